using System.Diagnostics;
using System.IO.Compression;
using System.Xml.Linq;

namespace Microsoft.ML.Adversarial.Tests.Packaging;

/// <summary>
/// `dotnet pack` works and the advml tool installs from a local folder and runs (issue 14): build/check-pack.sh packs
/// the two libraries and the tool (linux-x64 only, to stay near a minute), installs the tool into a private tool path
/// and runs `advml --help`; this test runs it and checks what it made.
/// </summary>
[TestCategory("Slow")]
[TestClass]
public sealed class PackagingTests
{
    /// <summary>nuget.org refuses packages over 250 MB.</summary>
    private const long GalleryLimitBytes = 250_000_000;

    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void LibrariesAndToolPackAndTheToolInstallsFromAFolderAndRunsHelp()
    {
        string root = PythonReference.RepoRoot();
        string outDir = TestData.TempFolder();
        try
        {
            string log = RunCheckPack(root, outDir);
            StringAssert.Contains(log, "check-pack: OK");
            string packages = Path.Combine(outDir, "packages");
            string Find(string pattern)
            {
                var files = Directory.GetFiles(packages, pattern);
                Assert.AreEqual(1, files.Length, $"expected one {pattern} in {packages}, found: {string.Join(", ", Directory.GetFiles(packages).Select(Path.GetFileName))}");
                return files[0];
            }

            foreach (var (id, assembly) in new[] { ("MLNet.Adversarial.Core", "Microsoft.ML.Adversarial.Core"), ("MLNet.Adversarial", "Microsoft.ML.Adversarial") })
            {
                string nupkg = Find($"{id}.0*.nupkg");
                Find($"{id}.0*.snupkg");
                using var zip = ZipFile.OpenRead(nupkg);
                var meta = Metadata(zip);
                Assert.AreEqual(id, Value(meta, "id"));
                Assert.IsFalse(id.StartsWith("Microsoft.", StringComparison.Ordinal), "the Microsoft.* prefixes are reserved on nuget.org");
                var license = meta.Elements().Single(e => e.Name.LocalName == "license");
                Assert.AreEqual("expression", (string?)license.Attribute("type"));
                Assert.AreEqual("MIT", license.Value);
                Assert.AreEqual("README.md", Value(meta, "readme"));
                Assert.IsNotNull(zip.GetEntry("README.md"), "the readme the nuspec names is in the package");
                StringAssert.Contains(Value(meta, "tags"), "adversarial");
                Assert.IsFalse(string.IsNullOrWhiteSpace(Value(meta, "releaseNotes")));
                // The assembly keeps its name; its XML docs ship beside it (CS1591 is on, so they are complete).
                Assert.IsNotNull(zip.GetEntry($"lib/net10.0/{assembly}.dll"));
                Assert.IsNotNull(zip.GetEntry($"lib/net10.0/{assembly}.xml"));
            }

            // The tool: a pointer package that names the per-platform one, which carries only its own native libtorch.
            using (var pointer = ZipFile.OpenRead(Find("MLNet.Adversarial.Cli.0*.nupkg")))
            {
                var settings = pointer.Entries.Single(e => e.Name == "DotnetToolSettings.xml");
                using var s = settings.Open();
                var rids = XDocument.Load(s).Descendants("RuntimeIdentifierPackage").ToDictionary(e => (string)e.Attribute("RuntimeIdentifier")!, e => (string)e.Attribute("Id")!);
                Assert.AreEqual("MLNet.Adversarial.Cli.linux-x64", rids["linux-x64"]);
                Assert.IsFalse(pointer.Entries.Any(e => e.FullName.EndsWith(".dll", StringComparison.Ordinal)), "the pointer package holds no code");
            }
            string linux = Find("MLNet.Adversarial.Cli.linux-x64.0*.nupkg");
            long size = new FileInfo(linux).Length;
            TestContext.WriteLine($"{Path.GetFileName(linux)}: {size} bytes");
            Assert.IsTrue(size < GalleryLimitBytes, $"{Path.GetFileName(linux)} is {size} bytes, over nuget.org's 250 MB limit");
            using (var zip = ZipFile.OpenRead(linux))
            {
                var names = zip.Entries.Select(e => e.FullName).ToList();
                Assert.IsTrue(names.Any(n => n.EndsWith("/libtorch_cpu.so", StringComparison.Ordinal)), "the linux-x64 package carries libtorch");
                var foreign = names.Where(n => n.EndsWith(".dll", StringComparison.Ordinal) ? n.Contains("/runtimes/") : n.Contains("win-") || n.Contains("osx-") || n.Contains("riscv") || n.Contains("arm64") || n.Contains("musl")).ToList();
                Assert.AreEqual(0, foreign.Count, "other platforms' native files: " + string.Join(", ", foreign.Take(10)));
            }
        }
        finally
        {
            // The installed tool and the packages come to about 1 GB.
            Directory.Delete(outDir, recursive: true);
        }
    }

    private string RunCheckPack(string root, string outDir)
    {
        // The script's output goes to a file, not a pipe: nothing it starts can hold this test open.
        var psi = new ProcessStartInfo("bash") { WorkingDirectory = root };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("bash build/check-pack.sh \"$0\" > \"$0/check-pack.log\" 2>&1");
        psi.ArgumentList.Add(outDir);
        // The configuration this test runs from (bin/<Configuration>/<tfm>/), so the pack reuses that build.
        psi.Environment["CONFIGURATION"] = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent!.Name;
        // dotnet test's own MSBuild settings are not for this build.
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)).ToList())
            psi.Environment.Remove(key);
        using var p = Process.Start(psi)!;
        bool exited = p.WaitForExit(TimeSpan.FromMinutes(8));
        if (!exited) p.Kill(entireProcessTree: true);
        string logFile = Path.Combine(outDir, "check-pack.log");
        string log = File.Exists(logFile) ? File.ReadAllText(logFile) : "(no log)";
        TestContext.WriteLine(string.Join("\n", log.Split('\n').Where(l => l.StartsWith("check-pack:", StringComparison.Ordinal))));
        string tail = string.Join("\n", log.Split('\n').TakeLast(30));
        Assert.IsTrue(exited, $"build/check-pack.sh ran over 8 minutes:\n{tail}");
        Assert.AreEqual(0, p.ExitCode, $"build/check-pack.sh failed:\n{tail}");
        return log;
    }

    private static XElement Metadata(ZipArchive zip)
    {
        using var s = zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open();
        return XDocument.Load(s).Root!.Elements().Single(e => e.Name.LocalName == "metadata");
    }

    private static string Value(XElement metadata, string name) => metadata.Elements().Single(e => e.Name.LocalName == name).Value;
}
