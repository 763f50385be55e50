using System.Globalization;

namespace Microsoft.ML.Adversarial.Evaluation;

/// <summary>How much checking for gradient masking an evaluation does (<see cref="RobustnessOptions.MaskingChecks"/>).</summary>
public enum GradientMaskingChecks
{
    /// <summary>None.</summary>
    Off,
    /// <summary>
    /// The default: zero input gradients and a random model (one extra backward pass per batch, one forward on the first),
    /// and the comparisons the evaluated methods and epsilons allow.
    /// </summary>
    FromResults,
    /// <summary>
    /// Also runs the probes every comparison needs, at each epsilon: FGSM, PGD (20 steps), random-sign noise and Square,
    /// and PGD from the clean image at <see cref="RobustnessOptions.MaskingLargeEpsilon"/>. Costs about one Square run more.
    /// </summary>
    Full,
}

/// <summary>
/// One check for gradient masking (Athalye, Carlini and Wagner, 2018; Carlini et al., 2019, "On Evaluating Adversarial
/// Robustness"), with its figures. A failed check means the robust accuracy of the gradient attacks overstates the
/// model's robustness.
/// </summary>
/// <param name="Check">Which check: <see cref="MaskingChecks.ZeroGradient"/>, <see cref="MaskingChecks.RandomModel"/>, ...</param>
/// <param name="Epsilon">The epsilon it looked at (pixel units); 0 for checks at the clean images.</param>
/// <param name="Failed">True when the model failed it: a sign of masking.</param>
/// <param name="Finding">What was compared, with the figures, and what to do when it failed.</param>
public sealed record MaskingCheck(string Check, double Epsilon, bool Failed, string Finding);

/// <summary>
/// The kind of a method, as the checks compare them. Iterative methods aimed at a class of their own choosing (iter. l.l.)
/// are weaker than untargeted FGSM at small epsilons on honest models, so only untargeted ones are held against one step.
/// </summary>
internal enum MethodKind { OneStep, Iterative, TargetedIterative, GradientFree, Noise, Ensemble }

/// <summary>Robust examples of one method (or probe) at one epsilon.</summary>
internal sealed record MethodResult(string Method, MethodKind Kind, double Epsilon, long Robust, long Count);

/// <summary>What an evaluation gathered for the checks.</summary>
internal sealed class MaskingEvidence
{
    /// <summary>Examples the model classifies correctly, of which <see cref="ZeroGradient"/> had an all-zero input gradient.</summary>
    public long CorrectClean, ZeroGradient;
    /// <summary>False for a black box (scores only): no gradient to look at.</summary>
    public bool GradientsMeasured;
    /// <summary>Largest difference between two passes of the model on the same images (null when not measured).</summary>
    public double? RepeatDifference;
    /// <summary>Every method's and probe's robust count per epsilon.</summary>
    public List<MethodResult> Results { get; } = new();
    /// <summary>Per epsilon: examples a gradient-free attack broke that every gradient attack left standing.</summary>
    public Dictionary<double, long> GradientFreeOnly { get; } = new();
    /// <summary>The large-epsilon probe's result, when it ran.</summary>
    public MethodResult? LargeEpsilon;
}

/// <summary>
/// The checks, judged on an evaluation's figures: the one home of their thresholds. Each compares counts with a margin
/// for sampling noise (<see cref="Beats"/>), so an honest model on a few hundred images does not trip them.
/// </summary>
public static class MaskingChecks
{
    /// <summary>Input gradients exactly zero at correctly classified clean images (rounding layers, saturated softmax).</summary>
    public const string ZeroGradient = "zero-gradient";
    /// <summary>The model gives different outputs for the same images: gradients are of one random draw.</summary>
    public const string RandomModel = "random-model";
    /// <summary>Robust accuracy rises with epsilon.</summary>
    public const string EpsilonMonotone = "epsilon-monotone";
    /// <summary>Robust accuracy does not fall to about 0 at a large epsilon.</summary>
    public const string LargeEpsilon = "large-epsilon";
    /// <summary>A one-step attack beats the iterative ones.</summary>
    public const string IterativeBeatsOneStep = "iterative-vs-one-step";
    /// <summary>The black-box (score-based) attack beats the white-box ones.</summary>
    public const string WhiteBoxBeatsBlackBox = "white-vs-black-box";
    /// <summary>A gradient-free attack breaks examples every gradient attack left standing.</summary>
    public const string GradientFreeOnly = "gradient-free-only";
    /// <summary>Random noise of the same size beats the attacks.</summary>
    public const string NoiseBeatsAttack = "noise-vs-attack";

    /// <summary>Above this share of correctly classified images with an all-zero gradient, the gradient is masked.</summary>
    internal const double ZeroGradientShare = 0.05;
    /// <summary>Robust accuracy at the large epsilon above which it "does not reach about 0".</summary>
    internal const double LargeEpsilonAccuracy = 0.05;

    /// <summary>
    /// True when <paramref name="fewer"/> robust examples is fewer than <paramref name="more"/> by more than sampling noise
    /// on <paramref name="count"/> examples: at least 3 examples and 2 points, and 2.5 standard errors of the difference
    /// of two proportions (unpaired, so conservative for the paired figures of one data set).
    /// </summary>
    internal static bool Beats(long fewer, long more, long count)
    {
        if (count <= 0 || more - fewer < 3) return false;
        double a = (double)fewer / count, b = (double)more / count;
        double se = Math.Sqrt((a * (1 - a) + b * (1 - b)) / count);
        return b - a > Math.Max(0.02, 2.5 * se);
    }

    private static string P(long robust, long count) => count == 0 ? "n/a" : ((double)robust / count).ToString("P1", CultureInfo.InvariantCulture);

    private static string F(FormattableString s) => FormattableString.Invariant(s);

    /// <summary>Every check the evidence allows, passed and failed, in a fixed order.</summary>
    internal static List<MaskingCheck> Judge(MaskingEvidence e)
    {
        var checks = new List<MaskingCheck>();
        if (e.GradientsMeasured && e.CorrectClean > 0)
        {
            bool failed = e.ZeroGradient >= 3 && e.ZeroGradient > ZeroGradientShare * e.CorrectClean;
            checks.Add(new MaskingCheck(ZeroGradient, 0, failed, failed
                ? F($"{e.ZeroGradient} of {e.CorrectClean} correctly classified images have an input gradient of exactly zero: gradient attacks cannot move them, so their robust accuracy is not robustness (a rounding or other non-differentiable layer, or a saturated softmax). Name the layer in AttackOptions.BpdaLayers, or use a loss that does not saturate (apgd-dlr) and a gradient-free attack (square).")
                : F($"{e.ZeroGradient} of {e.CorrectClean} correctly classified images have a zero input gradient.")));
        }
        if (e.RepeatDifference is double diff)
        {
            bool failed = diff > 1e-5;
            checks.Add(new MaskingCheck(RandomModel, 0, failed, failed
                ? F($"The model gives different outputs for the same images (logits differ by up to {diff:G3}): it draws random numbers, so each gradient is of one draw. Attack it with Expectation over Transformation (AttackOptions.EotSamples, e.g. 20, or AutoAttack's 'rand' version) and evaluate its accuracy over several draws.")
                : "The model gives the same outputs for the same images."));
        }
        var byMethod = e.Results.GroupBy(r => r.Method);
        foreach (var method in byMethod)
        {
            var rows = method.Where(r => r.Kind != MethodKind.Noise).OrderBy(r => r.Epsilon).ToList();
            for (int i = 1; i < rows.Count; i++)
            {
                var (small, large) = (rows[i - 1], rows[i]);
                if (Beats(small.Robust, large.Robust, Math.Min(small.Count, large.Count)))
                    checks.Add(new MaskingCheck(EpsilonMonotone, large.Epsilon, true,
                        F($"{method.Key} leaves more images robust at eps {large.Epsilon} ({P(large.Robust, large.Count)}) than at eps {small.Epsilon} ({P(small.Robust, small.Count)}): a larger ball holds every smaller one, so a working attack cannot do worse. The attack is being misled (gradient masking) or is too weak.")));
            }
        }
        if (e.LargeEpsilon is { } big)
        {
            double acc = big.Count == 0 ? 0 : (double)big.Robust / big.Count;
            bool failed = acc > LargeEpsilonAccuracy && big.Robust >= 3;
            checks.Add(new MaskingCheck(LargeEpsilon, big.Epsilon, failed, failed
                ? F($"{big.Method} at eps {big.Epsilon} (a ball that reaches a grey image from any image) leaves {P(big.Robust, big.Count)} robust; it should fall to about 0. Gradients do not lead the attack out of the class: gradient masking.")
                : F($"{big.Method} at eps {big.Epsilon} leaves {P(big.Robust, big.Count)} robust.")));
        }
        foreach (var eps in e.Results.Select(r => r.Epsilon).Distinct().OrderBy(x => x))
        {
            var at = e.Results.Where(r => r.Epsilon == eps).ToList();
            MethodResult? Best(MethodKind kind) => at.Where(r => r.Kind == kind).MinBy(r => r.Robust);
            var oneStep = Best(MethodKind.OneStep);
            var iterative = Best(MethodKind.Iterative);
            var gradientFree = Best(MethodKind.GradientFree);
            var noise = Best(MethodKind.Noise);
            var gradient = at.Where(r => r.Kind is MethodKind.OneStep or MethodKind.Iterative or MethodKind.TargetedIterative).MinBy(r => r.Robust);
            if (oneStep is not null && iterative is not null)
            {
                bool failed = Beats(oneStep.Robust, iterative.Robust, iterative.Count);
                checks.Add(new MaskingCheck(IterativeBeatsOneStep, eps, failed, failed
                    ? F($"At eps {eps} the one-step {oneStep.Method} ({P(oneStep.Robust, oneStep.Count)} robust) beats the iterative {iterative.Method} ({P(iterative.Robust, iterative.Count)}): many steps should do at least as well as one. The loss surface misleads small steps (gradient masking), or the iterative attack's budget is too small.")
                    : F($"At eps {eps} the iterative {iterative.Method} leaves {P(iterative.Robust, iterative.Count)} robust, the one-step {oneStep.Method} {P(oneStep.Robust, oneStep.Count)}.")));
            }
            if (gradientFree is not null && gradient is not null)
            {
                bool failed = Beats(gradientFree.Robust, gradient.Robust, gradient.Count);
                checks.Add(new MaskingCheck(WhiteBoxBeatsBlackBox, eps, failed, failed
                    ? F($"At eps {eps} the black-box {gradientFree.Method}, which sees only scores, leaves {P(gradientFree.Robust, gradientFree.Count)} robust, fewer than the best white-box attack {gradient.Method} ({P(gradient.Robust, gradient.Count)}): the gradients are masked. Report the black-box figure (or AutoAttack's worst case), not the gradient attacks'.")
                    : F($"At eps {eps} the white-box {gradient.Method} leaves {P(gradient.Robust, gradient.Count)} robust, the black-box {gradientFree.Method} {P(gradientFree.Robust, gradientFree.Count)}.")));
            }
            if (e.GradientFreeOnly.TryGetValue(eps, out long only) && gradient is not null)
            {
                bool failed = only >= 3 && only > 0.01 * gradient.Count;
                checks.Add(new MaskingCheck(GradientFreeOnly, eps, failed, failed
                    ? F($"At eps {eps} the gradient-free attack broke {only} of {gradient.Count} images that every gradient attack left standing: gradient masking. Trust the worst case over all attacks.")
                    : F($"At eps {eps} the gradient-free attack broke {only} of {gradient.Count} images no gradient attack broke.")));
            }
            if (noise is not null && gradient is not null)
            {
                bool failed = Beats(noise.Robust, gradient.Robust, gradient.Count);
                checks.Add(new MaskingCheck(NoiseBeatsAttack, eps, failed, failed
                    ? F($"At eps {eps} random noise ({noise.Method}, {P(noise.Robust, noise.Count)} robust) beats the best gradient attack {gradient.Method} ({P(gradient.Robust, gradient.Count)}): the gradients point nowhere useful (noisy or masked).")
                    : F($"At eps {eps} random noise leaves {P(noise.Robust, noise.Count)} robust, the best gradient attack {P(gradient.Robust, gradient.Count)}.")));
            }
        }
        return checks;
    }
}
