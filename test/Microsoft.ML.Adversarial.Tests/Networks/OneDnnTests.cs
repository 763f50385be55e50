using Microsoft.ML.Adversarial.Models;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.Adversarial.Tests.Networks;

/// <summary>
/// Issue 27 item 9: a torchvision ResNet-50 died with SIGFPE (exit 136) at its first pass on an AMD EPYC Zen 5 virtual
/// machine. oneDNN sizes its blocking by the data-cache sizes CPUID reports and divides by them; the library reads them
/// the same way (<see cref="CpuCaches"/>) and switches oneDNN off (<see cref="OneDnn"/>) where they are missing or zero.
/// </summary>
[TestClass]
public sealed class OneDnnTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void SwitchingOneDnnOffKeepsConvolutionResults()
    {
        Assert.IsTrue(OneDnn.CanSwitch, OneDnn.SwitchProblem);
        bool before = OneDnn.Enabled;
        try
        {
            (Tensor Output, Tensor Gradient) Run(bool onednn, Tensor x, Tensor w, long padding)
            {
                OneDnn.Enabled = onednn;
                Assert.AreEqual(onednn, OneDnn.Enabled, "read back");
                var leaf = x.detach().clone().requires_grad_(true);
                var y = F.conv2d(leaf, w, padding: new[] { padding, padding });
                var g = autograd.grad(new[] { y.sum() }, new[] { leaf })[0];
                return (y.detach(), g);
            }
            using var scope = NewDisposeScope();
            manual_seed(0);
            // pytorch/pytorch#177227's shape (1x1, 1536 -> 32 channels: SIGFPE on an AMD EPYC there) and a 3x3 ResNet block's.
            foreach (var (x, w, padding) in new[] { (randn(1, 1536, 1, 32), randn(32, 1536, 1, 1) * 0.05, 0L), (randn(2, 64, 28, 28), randn(64, 64, 3, 3) * 0.05, 1L) })
            {
                var on = Run(true, x, w, padding);
                var off = Run(false, x, w, padding);
                double output = ((on.Output - off.Output).norm() / off.Output.norm()).item<float>();
                double gradient = ((on.Gradient - off.Gradient).norm() / off.Gradient.norm()).item<float>();
                TestContext.WriteLine($"{FastPathCheck.Shape(x)} * {FastPathCheck.Shape(w)}: output {output:E1}, input gradient {gradient:E1} (relative L2, oneDNN on vs off)");
                Assert.IsTrue(output < 1e-5 && gradient < 1e-5, $"oneDNN on and off differ by {output:E1} / {gradient:E1}");
            }
        }
        finally
        {
            OneDnn.Enabled = before;
        }
    }

    [TestMethod]
    public void TheCacheProbeReadsThisCpuAsLinuxListsIt()
    {
        var report = CpuCaches.Probe();
        TestContext.WriteLine($"{report.Cpu}: CPUID {CpuCacheReport.Describe(report.Cpuid)}; Linux {(report.Sysfs is { } s ? CpuCacheReport.Describe(s) : "-")}; {report.Problem ?? "no problem"}");
        if (CpuCaches.HardwareCpuid() is null || report.Sysfs is null) Assert.Inconclusive("needs x86 and Linux's cache list");
        Assert.IsFalse(report.IsSuspicious, report.Problem);
        foreach (var level in report.Sysfs!)
            Assert.AreEqual(level.Bytes, report.Cpuid.Single(l => l.Level == level.Level).Bytes, $"L{level.Level}: CPUID as oneDNN reads it vs Linux");
        Assert.IsTrue(OneDnn.Decision.Enabled, OneDnn.Decision.Reason);
    }

    /// <summary>A CPUID with the given leaves (others all zero).</summary>
    private static CpuCaches.CpuidFunction Cpuid(Dictionary<(uint Leaf, uint Sub), (uint, uint, uint, uint)> leaves) =>
        (leaf, sub) => leaves.TryGetValue((leaf, sub), out var r) ? r : (0, 0, 0, 0);

    // "AuthenticAMD" as CPUID leaf 0 spells it in EBX, EDX, ECX.
    private const uint Auth = 0x68747541, Enti = 0x69746E65, Camd = 0x444D4163;

    /// <summary>Leaf 0x8000001D for a cache: type (1 data, 2 instruction, 3 unified), sharing, and size as line x ways x sets.</summary>
    private static (uint, uint, uint, uint) AmdCache(uint type, uint level, uint sharing, uint ways, uint sets) =>
        (type | (level << 5) | ((sharing - 1) << 14), 63u | ((ways - 1) << 22), sets - 1, 0);

    /// <summary>A Zen-like AMD part: L1d 32 KiB and L2 1 MiB per core (2 threads), L3 32 MiB for 16 threads; topology as leaf 0xB gives it.</summary>
    private static Dictionary<(uint, uint), (uint, uint, uint, uint)> Zen(uint threadsPerCore, uint threadsPerPackage) => new()
    {
        [(0, 0)] = (0x10, Auth, Camd, Enti),
        [(0x80000000, 0)] = (0x80000021, 0, 0, 0),
        [(0xB, 0)] = (1, threadsPerCore, 1 << 8, 0),
        [(0xB, 1)] = (4, threadsPerPackage, 2 << 8, 0),
        [(0x8000001D, 0)] = AmdCache(1, 1, 2, 8, 64),
        [(0x8000001D, 1)] = AmdCache(2, 1, 2, 8, 64),
        [(0x8000001D, 2)] = AmdCache(3, 2, 2, 8, 2048),
        [(0x8000001D, 3)] = AmdCache(3, 3, 16, 16, 32768),
    };

    [TestMethod]
    public void ACpuThatReportsNoOrZeroCacheSizesGetsOneDnnOffWithOneWarning()
    {
        var sysfs = new[] { new CacheLevel(1, 32 << 10, -1), new CacheLevel(2, 1 << 20, -1), new CacheLevel(3, 32 << 20, -1) };
        var healthy = CpuCaches.Probe(Cpuid(Zen(2, 16)), sysfs, "AMD EPYC (test)");
        Assert.AreEqual("L1 32 KiB/1, L2 1 MiB/1, L3 32 MiB/8", CpuCacheReport.Describe(healthy.Cpuid));
        Assert.IsFalse(healthy.IsSuspicious, healthy.Problem);
        Assert.IsTrue(OneDnn.Decide(healthy, null).Enabled);
        Assert.IsNull(OneDnn.Decide(healthy, null).Warning);

        // A virtual machine whose topology (leaf 0xB: 1 thread) is narrower than the host's cache sharing (2 threads per
        // L1): oneDNN's sharing count for L2 and L3 comes out 0, and get_per_core_cache_size divides by it.
        var narrow = CpuCaches.Probe(Cpuid(Zen(1, 1)), sysfs, "AMD EPYC (VM)");
        StringAssert.Contains(narrow.Problem, "L2 cache is shared by 0 logical processors");
        // An older AMD part (no leaf 0x8000001D) whose hypervisor zeroes the L1/L2 size fields.
        var legacy = CpuCaches.Probe(Cpuid(new()
        {
            [(0, 0)] = (0xD, Auth, Camd, Enti),
            [(0x80000000, 0)] = (0x80000008, 0, 0, 0),
            [(1, 0)] = (0x00800F12, 2 << 16, 0, 1u << 28),
            [(0x80000008, 0)] = (0, 0, 1, 0),
            [(0x80000006, 0)] = (0, 0, 6 << 12, 0),
        }), null, "AMD (legacy VM)");
        StringAssert.Contains(legacy.Problem, "L1 data cache with size 0");
        StringAssert.Contains(legacy.Problem, "L2 data cache with size 0");
        // CPUID reporting no cache at all, and Linux listing caches of size 0 or none.
        var none = Zen(2, 16);
        none[(0x8000001D, 0)] = (0, 0, 0, 0);
        StringAssert.Contains(CpuCaches.Probe(Cpuid(none), sysfs, "x").Problem, "CPUID reports no data caches");
        StringAssert.Contains(CpuCaches.Probe(Cpuid(Zen(2, 16)), new[] { new CacheLevel(1, 0, -1) }, "x").Problem, "L1 data cache with size 0");
        StringAssert.Contains(CpuCaches.Probe(null, Array.Empty<CacheLevel>(), "x").Problem, "Linux lists no data-cache sizes");

        foreach (var cpu in new[] { narrow, legacy })
        {
            var decision = OneDnn.Decide(cpu, null);
            Assert.IsFalse(decision.Enabled, cpu.Cpu);
            StringAssert.StartsWith(decision.Warning, "WARNING: oneDNN switched off: " + cpu.Cpu);
            StringAssert.Contains(decision.Warning, cpu.Problem);
            StringAssert.Contains(decision.Warning, "ADVML_ONEDNN=on");
            Assert.IsFalse(decision.Warning!.Contains('\n'), "one line");
            Assert.IsTrue(OneDnn.Decide(cpu, "on").Enabled, "ADVML_ONEDNN=on keeps it on");
            Assert.IsNull(OneDnn.Decide(cpu, "on").Warning);
        }
        Assert.IsFalse(OneDnn.Decide(healthy, "off").Enabled, "ADVML_ONEDNN=off switches it off on any CPU");
        StringAssert.Contains(OneDnn.Decide(healthy, "maybe").Warning, "ADVML_ONEDNN='maybe' is not on, off or auto");

        // Applied: oneDNN is off afterwards, and the one line goes the fast-path check's way (FastPathCheck.Warned).
        bool before = OneDnn.Enabled;
        var lines = new List<string>();
        void Collect(string line) => lines.Add(line);
        FastPathCheck.Warned += Collect;
        try
        {
            OneDnn.Enabled = true;
            var applied = OneDnn.Apply(OneDnn.Decide(narrow, null), FastPathCheck.WarnLine);
            Assert.IsFalse(applied.Enabled);
            Assert.IsFalse(OneDnn.Enabled, "oneDNN must be off after the decision is applied");
            Assert.AreEqual(1, lines.Count, string.Join("\n", lines));
            StringAssert.StartsWith(lines[0], "WARNING: oneDNN switched off: AMD EPYC (VM)");
        }
        finally
        {
            FastPathCheck.Warned -= Collect;
            OneDnn.Enabled = before;
        }
    }
}
