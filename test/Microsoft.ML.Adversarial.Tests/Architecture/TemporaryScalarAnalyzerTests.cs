using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.ML.Adversarial.Analyzers;

namespace Microsoft.ML.Adversarial.Tests.Architecture;

/// <summary>
/// Issue 29: the held-Scalar rule holds by itself. ADVML001 runs when the core builds (an error), so a temporary
/// TorchSharp Scalar on a hot path no longer compiles; these snippets show what it finds and what it lets through.
/// </summary>
[TestClass]
public sealed class TemporaryScalarAnalyzerTests
{
    private static ImmutableArray<Diagnostic> Analyze(string body)
    {
        string source = "using TorchSharp; using static TorchSharp.torch; static class C { static Tensor M(Tensor a, Tensor b, double e, long n, Scalar held) { " + body + " } }";
        _ = typeof(TorchSharp.torch);
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Concat(AppDomain.CurrentDomain.GetAssemblies().Where(a => !a.IsDynamic && a.Location.Length > 0).Select(a => a.Location))
            .Distinct().Select(p => MetadataReference.CreateFromFile(p));
        var compilation = CSharpCompilation.Create("Snippet", new[] { CSharpSyntaxTree.ParseText(source) }, references,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
        var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        Assert.AreEqual(0, errors.Count, string.Join("\n", errors));
        return compilation.WithAnalyzers(ImmutableArray.Create<DiagnosticAnalyzer>(new TemporaryScalarAnalyzer())).GetAnalyzerDiagnosticsAsync().Result;
    }

    [TestMethod]
    public void FindsEveryWayANumberBecomesATemporaryScalar()
    {
        // The line RobustnessEvaluator had (the pattern behind the crash of issue 13).
        Assert.AreEqual(1, Analyze("return full(new long[] { n }, e, ScalarType.Float32, a.device);").Length);
        Assert.AreEqual(1, Analyze("return a.gt(0);").Length, "comparison with a number");
        Assert.AreEqual(1, Analyze("return a * 2.0;").Length, "operator with a number");
        Assert.AreEqual(1, Analyze("return 1 - a;").Length, "number on the left");
        Assert.AreEqual(1, Analyze("return a + b;").Length, "tensor + tensor: the hidden alpha");
        Assert.AreEqual(1, Analyze("return a.add(b);").Length, "add's default alpha");
        Assert.AreEqual(1, Analyze("a += b; return a;").Length, "compound assignment");
        Assert.AreEqual(1, Analyze("return a.clamp_min(1e-30);").Length);
        var d = Analyze("return a.mul(e);").Single();
        Assert.AreEqual(TemporaryScalarAnalyzer.Id, d.Id);
        StringAssert.Contains(d.GetMessage(), "HeldScalars");
    }

    [TestMethod]
    public void FindsALiteralZeroReadAsADtype()
    {
        // The defect of issue 28: APGD's per-example count of rising steps was sum(0), the sum of all as a byte.
        var d = Analyze("return a.sum(0);").Single();
        Assert.AreEqual(TemporaryScalarAnalyzer.ZeroAsDtypeId, d.Id);
        StringAssert.Contains(d.GetMessage(), "dim: 0");
        Assert.AreEqual(0, Analyze("return a.sum(dim: 0);").Length);
        Assert.AreEqual(0, Analyze("return a.sum(0L);").Length, "a long is a dimension");
        Assert.AreEqual(0, Analyze("return a.sum(ScalarType.Float64);").Length, "a named dtype is meant");
        Assert.AreEqual(0, Analyze("return a.cumsum(0);").Length, "no dtype overload to fall into");
    }

    [TestMethod]
    public void LetsHeldScalarsAndTensorArithmeticThrough()
    {
        Assert.AreEqual(0, Analyze("return a.add(b, held);").Length);
        Assert.AreEqual(0, Analyze("return a * b - b / a;").Length, "tensor * and / take no Scalar, nor does -");
        Assert.AreEqual(0, Analyze("using var s = e.ToScalar(); return a.mul(s);").Length, "a Scalar disposed after the call lives through it");
        Assert.AreEqual(0, Analyze("return a.gt(held);").Length);
    }
}
