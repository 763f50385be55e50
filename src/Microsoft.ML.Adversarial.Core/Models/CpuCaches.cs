using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.Adversarial.Models;

/// <summary>One data (or unified) cache level as a CPU reports it.</summary>
/// <param name="Level">1, 2, 3, ...</param>
/// <param name="Bytes">Its size; 0 when the CPU reports none.</param>
/// <param name="SharedBy">Logical processors per copy of it, as oneDNN computes the figure (it divides the size by it); 0 is a division by zero there.</param>
public sealed record CacheLevel(int Level, long Bytes, int SharedBy);

/// <summary>What <see cref="CpuCaches.Probe()"/> read: the data caches the way oneDNN reads them (CPUID) and as Linux lists them.</summary>
/// <param name="Cpu">The CPU's name and vector extensions (<see cref="FastPathCheck.Cpu"/>).</param>
/// <param name="Vendor">CPUID's vendor string ("AuthenticAMD", "GenuineIntel"), or null off x86.</param>
/// <param name="Cpuid">The data-cache levels from CPUID (empty off x86, or when CPUID reports none).</param>
/// <param name="SmtWidth">Logical processors per core as oneDNN's CPUID code computes it (it divides by it); null off x86.</param>
/// <param name="Sysfs">Data and unified cache sizes from /sys/devices/system/cpu/cpu0/cache (Linux), null where there is no such folder.</param>
/// <param name="Problem">Why oneDNN's cache-size arithmetic may divide by zero on this CPU, in words; null when nothing is missing.</param>
public sealed record CpuCacheReport(string Cpu, string? Vendor, IReadOnlyList<CacheLevel> Cpuid, int? SmtWidth,
    IReadOnlyList<CacheLevel>? Sysfs, string? Problem)
{
    /// <summary>True when the CPU reports no, or zero, data-cache sizes (or a topology oneDNN divides by zero with).</summary>
    public bool IsSuspicious => Problem is not null;

    /// <summary>E.g. <c>L1 32 KiB/1, L2 1 MiB/1, L3 32 MiB/2</c> (size / logical processors sharing it).</summary>
    public static string Describe(IReadOnlyList<CacheLevel> levels) => levels.Count == 0 ? "none"
        : string.Join(", ", levels.Select(l => $"L{l.Level} {Size(l.Bytes)}{(l.SharedBy > 0 ? $"/{l.SharedBy}" : l.SharedBy == 0 ? "/0" : "")}"));

    private static string Size(long bytes) => bytes switch
    {
        0 => "0",
        _ when bytes % (1 << 20) == 0 => $"{bytes >> 20} MiB",
        _ when bytes % 1024 == 0 => $"{bytes >> 10} KiB",
        _ => $"{bytes} B",
    };
}

/// <summary>
/// The CPU's data-cache sizes read the way libtorch's oneDNN reads them (Xbyak's <c>Cpu::setCacheHierarchy</c> and
/// <c>setNumCores</c>: CPUID leaf 4 on Intel, leaf 0x8000001D on AMD, 0x80000005/6 on older AMD parts, leaf 0xB for the
/// topology), and as Linux lists them. oneDNN sizes its blocking by <c>size / logical processors sharing</c> per level
/// (<c>platform::get_per_core_cache_size</c>) and divides by further figures derived from it: a hypervisor that hides
/// or zeroes these leaves, or reports a topology smaller than the host's cache sharing, gives oneDNN a zero to divide by,
/// and the process dies with SIGFPE (exit 136) at its first convolution (docs/performance.md, "oneDNN and CPUs that
/// report no cache sizes"). <see cref="OneDnn"/> switches oneDNN off for such a CPU.
/// </summary>
public static class CpuCaches
{
    /// <summary>One CPUID query: leaf and sub-leaf in, EAX, EBX, ECX, EDX out.</summary>
    public delegate (uint Eax, uint Ebx, uint Ecx, uint Edx) CpuidFunction(uint leaf, uint subleaf);

    private const int MaxTopologyLevels = 2, MaxCacheLevels = 10;
    private static readonly Lazy<CpuCacheReport> This = new(() => Environment.GetEnvironmentVariable(TestVariable) == "none"
        ? Probe(null, Array.Empty<CacheLevel>(), FastPathCheck.Cpu) // test-only: a CPU that reports no cache sizes (child processes)
        : Probe(HardwareCpuid(), ReadSysfs(), FastPathCheck.Cpu));

    /// <summary>Test-only: <c>none</c> makes <see cref="Probe()"/> report a CPU without cache sizes (for tests that run advml).</summary>
    internal const string TestVariable = "ADVML_TEST_CPU_CACHES";

    /// <summary>This machine's report (read once per process).</summary>
    public static CpuCacheReport Probe() => This.Value;

    /// <summary>CPUID of this CPU, or null off x86.</summary>
    public static CpuidFunction? HardwareCpuid() => X86Base.IsSupported
        ? (leaf, subleaf) =>
        {
            var (a, b, c, d) = X86Base.CpuId((int)leaf, (int)subleaf);
            return ((uint)a, (uint)b, (uint)c, (uint)d);
        }
        : null;

    /// <summary>
    /// The report for a CPU given by its CPUID (null: not x86) and its Linux cache list (null: no such folder). Tests feed
    /// it CPUs they do not have.
    /// </summary>
    public static CpuCacheReport Probe(CpuidFunction? cpuid, IReadOnlyList<CacheLevel>? sysfs, string cpu)
    {
        string? vendor = null;
        var levels = new List<CacheLevel>();
        int? smt = null;
        var problems = new List<string>();
        if (cpuid is not null)
        {
            (vendor, levels, smt, var cpuidProblem) = ReadCpuid(cpuid);
            if (cpuidProblem is not null) problems.Add(cpuidProblem);
        }
        if (sysfs is not null)
        {
            if (sysfs.Count == 0) problems.Add("Linux lists no data-cache sizes (/sys/devices/system/cpu/cpu0/cache)");
            else if (sysfs.FirstOrDefault(l => l.Bytes <= 0) is { } zero) problems.Add($"Linux lists the L{zero.Level} data cache with size 0");
        }
        return new CpuCacheReport(cpu, vendor, levels, smt, sysfs, problems.Count == 0 ? null : string.Join("; ", problems));
    }

    private static (string? Vendor, List<CacheLevel> Levels, int? Smt, string? Problem) ReadCpuid(CpuidFunction cpuid)
    {
        var (maxLeaf, b0, c0, d0) = cpuid(0, 0);
        string vendor = Text(b0) + Text(d0) + Text(c0);
        bool amd = vendor == "AuthenticAMD", intel = vendor == "GenuineIntel";
        var levels = new List<CacheLevel>();
        if (!amd && !intel) return (vendor, levels, null, null); // oneDNN guesses sizes for other vendors: nothing to divide by zero
        uint maxExtended = cpuid(0x80000000, 0).Eax;
        var (smt, logical) = Topology(cpuid, amd, maxLeaf, maxExtended);
        var problems = new List<string>();
        if (smt == 0) problems.Add("CPUID's topology gives 0 logical processors per core");

        if (amd && maxExtended >= 0x8000001D)
        {
            int firstShared = 0;
            for (uint sub = 0; levels.Count < MaxCacheLevels && sub < 64; sub++)
            {
                var (a, b, c, _) = cpuid(0x8000001D, sub);
                uint type = a & 0x1F;
                if (type == 0) break;
                if (type == 2) continue; // instruction cache
                long bytes = (long)(Bits(b, 0, 11) + 1) * (Bits(b, 12, 21) + 1) * (Bits(b, 22, 31) + 1);
                if (Bits(a, 9, 9) == 0) bytes *= (long)c + 1;
                int sharing = (int)Bits(a, 14, 25) + 1;
                if (sub > 0)
                {
                    sharing = Math.Min(sharing, logical);
                    sharing /= Math.Max(1, firstShared);
                }
                else firstShared = sharing;
                levels.Add(new CacheLevel(levels.Count + 1, bytes, sharing));
            }
            if (levels.Count > 0) levels[0] = levels[0] with { SharedBy = Math.Min(1, levels[0].SharedBy) }; // as Xbyak does
        }
        else if (amd && maxExtended >= 0x80000006)
        {
            levels.Add(new CacheLevel(1, (long)Bits(cpuid(0x80000005, 0).Ecx, 24, 31) * 1024, 1));
            var (_, _, c6, d6) = cpuid(0x80000006, 0);
            if (Bits(c6, 12, 15) > 0) levels.Add(new CacheLevel(2, (long)Bits(c6, 16, 31) * 1024, 1));
            if (Bits(d6, 12, 15) > 0) levels.Add(new CacheLevel(3, (long)Bits(d6, 18, 31) * 512 * 1024, logical));
        }
        else if (intel && maxLeaf >= 4)
        {
            int smtWidth = smt;
            for (uint sub = 0; levels.Count < MaxCacheLevels && sub < 64; sub++)
            {
                var (a, b, c, _) = cpuid(4, sub);
                uint type = a & 0x1F;
                if (type == 0) break;
                if (type is not (1 or 3)) continue;
                int actual = (int)Bits(a, 14, 25) + 1;
                if (logical != 0) actual = Math.Min(actual, logical);
                long bytes = (long)(Bits(b, 22, 31) + 1) * (Bits(b, 12, 21) + 1) * (Bits(b, 0, 11) + 1) * ((long)c + 1);
                if (type == 1 && smtWidth == 0) smtWidth = actual;
                levels.Add(new CacheLevel(levels.Count + 1, bytes, smtWidth == 0 ? 0 : Math.Max(actual / smtWidth, 1)));
            }
        }
        if (levels.Count == 0) problems.Add("CPUID reports no data caches");
        foreach (var l in levels)
        {
            if (l.Bytes <= 0) problems.Add($"CPUID reports the L{l.Level} data cache with size 0");
            else if (l.SharedBy <= 0) problems.Add($"CPUID's L{l.Level} cache is shared by 0 logical processors as oneDNN counts them (cache sharing wider than the topology CPUID reports)");
        }
        return (vendor, levels, smt, problems.Count == 0 ? null : string.Join("; ", problems));
    }

    /// <summary>Logical processors per core and per package, as Xbyak's <c>setNumCores</c> computes them.</summary>
    private static (int Smt, int Logical) Topology(CpuidFunction cpuid, bool amd, uint maxLeaf, uint maxExtended)
    {
        if (maxLeaf >= 0xB)
        {
            var (a, b, _, _) = cpuid(0xB, 0);
            if (a != 0 || b != 0)
            {
                int smtCount = 0, core = 0;
                for (uint i = 0; i < MaxTopologyLevels; i++)
                {
                    var (_, bi, ci, _) = cpuid(0xB, i);
                    uint level = Bits(ci, 8, 15);
                    if (level == 1) smtCount = (int)Bits(bi, 0, 15);
                    else if (level == 2) core = (int)Bits(bi, 0, 15);
                }
                smtCount = Math.Max(1, smtCount);
                return (smtCount, Math.Max(smtCount, core));
            }
        }
        var (_, b1, _, d1) = cpuid(1, 0);
        int logical = (int)Bits(b1, 16, 23);
        bool htt = Bits(d1, 28, 28) != 0;
        int physical = 0;
        if (amd)
        {
            if (maxExtended >= 0x80000008) physical = (int)Bits(cpuid(0x80000008, 0).Ecx, 0, 7) + 1;
            if (!htt) return (1, 1);
            if (physical > 1)
            {
                uint a1 = cpuid(1, 0).Eax;
                int family = (int)Bits(a1, 8, 11);
                int displayFamily = family == 0xF ? family + (int)Bits(a1, 20, 27) : family;
                if (displayFamily >= 0x17 && maxExtended >= 0x8000001E) physical /= (int)Bits(cpuid(0x8000001E, 0).Ebx, 8, 15) + 1;
                return (physical == 0 ? 0 : logical / physical, logical);
            }
            return (1, logical > 1 ? logical : 2);
        }
        if (maxLeaf >= 4) physical = (int)Bits(cpuid(4, 0).Eax, 26, 31) + 1;
        if (!htt) return (1, 1);
        if (physical > 1) return (logical / physical, logical);
        return (1, logical > 0 ? logical : 1);
    }

    private static uint Bits(uint value, int first, int last) => (value >> first) & (uint)((1UL << (last + 1 - first)) - 1);

    private static string Text(uint register) =>
        new(new[] { (char)(register & 0xFF), (char)((register >> 8) & 0xFF), (char)((register >> 16) & 0xFF), (char)(register >> 24) });

    /// <summary>Data and unified caches of cpu0 as Linux lists them; null where the folder does not exist (not Linux, or hidden).</summary>
    public static IReadOnlyList<CacheLevel>? ReadSysfs(string folder = "/sys/devices/system/cpu/cpu0/cache")
    {
        if (!Directory.Exists(folder)) return null;
        var levels = new List<CacheLevel>();
        try
        {
            foreach (var index in Directory.GetDirectories(folder, "index*").Order(StringComparer.Ordinal))
            {
                string Read(string name) => File.Exists(Path.Combine(index, name)) ? File.ReadAllText(Path.Combine(index, name)).Trim() : "";
                if (Read("type") is not ("Data" or "Unified")) continue;
                if (!int.TryParse(Read("level"), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int level)) continue;
                levels.Add(new CacheLevel(level, ParseSize(Read("size")), -1));
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        return levels;
    }

    /// <summary>Linux's cache size text ("32K", "1024K", "32M", "0", ""): bytes, 0 when absent or unreadable.</summary>
    internal static long ParseSize(string text)
    {
        text = text.Trim();
        if (text.Length == 0) return 0;
        long factor = char.ToUpperInvariant(text[^1]) switch { 'K' => 1024, 'M' => 1 << 20, 'G' => 1 << 30, _ => 1 };
        string digits = factor == 1 ? text : text[..^1];
        return long.TryParse(digits, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out long n) ? n * factor : 0;
    }
}
