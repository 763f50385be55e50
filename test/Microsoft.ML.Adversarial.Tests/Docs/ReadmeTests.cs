using System.Reflection;
using System.Runtime.Loader;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Microsoft.ML.Adversarial.Tests.Docs;

/// <summary>The README's C# blocks, compiled and run as the one program they say they are (issue 14: they did not compile).</summary>
[TestClass]
public sealed class ReadmeTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]

    [TestCategory("Slow")]
    public void ReadmeCSharpBlocksCompileAndRun()
    {
        string readme = File.ReadAllText(Path.Combine(PythonReference.RepoRoot(), "README.md"));
        var blocks = Regex.Matches(readme, @"```csharp\n(.*?)```", RegexOptions.Singleline).Select(m => m.Groups[1].Value).ToList();
        Assert.IsTrue(blocks.Count >= 2, "the README shows the library in C# blocks");
        string program = string.Join("\n", blocks);

        // Everything the test itself runs with: the framework, ML.NET, TorchSharp and our two assemblies.
        _ = typeof(Microsoft.ML.Adversarial.MLNet.ImageClassifierTransformer);
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Concat(AppDomain.CurrentDomain.GetAssemblies().Where(a => !a.IsDynamic && a.Location.Length > 0).Select(a => a.Location))
            .Distinct().Select(p => MetadataReference.CreateFromFile(p));
        // A new console project (dotnet new console) has these implicit usings; the README assumes them, nothing more.
        const string implicitUsings = "global using System; global using System.Collections.Generic; global using System.IO; global using System.Linq; " +
            "global using System.Net.Http; global using System.Threading; global using System.Threading.Tasks;";
        var parse = new CSharpParseOptions(LanguageVersion.Latest);
        var compilation = CSharpCompilation.Create("Readme", new[] { CSharpSyntaxTree.ParseText(implicitUsings, parse), CSharpSyntaxTree.ParseText(program, parse) },
            references, new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable));
        using var image = new MemoryStream();
        var emitted = compilation.Emit(image);
        var errors = emitted.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).Select(d => d.ToString()).ToList();
        Assert.IsTrue(emitted.Success, "README does not compile:\n" + string.Join("\n", errors));

        // Run it in a folder of its own (it writes robust.zip), capturing what it prints.
        string dir = TestData.TempFolder();
        string previousDir = Environment.CurrentDirectory;
        var previousOut = Console.Out;
        var output = new StringWriter();
        try
        {
            Environment.CurrentDirectory = dir;
            Console.SetOut(output);
            image.Position = 0;
            var assembly = AssemblyLoadContext.Default.LoadFromStream(image);
            assembly.EntryPoint!.Invoke(null, new object[] { Array.Empty<string>() });
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            throw new AssertFailedException("README program failed: " + e.InnerException, e.InnerException);
        }
        finally
        {
            Console.SetOut(previousOut);
            Environment.CurrentDirectory = previousDir;
        }
        string printed = output.ToString();
        TestContext.WriteLine(printed);
        StringAssert.Contains(printed, "top-1 ");
        StringAssert.Contains(printed, "clean");
        StringAssert.Contains(printed, "predicted class key ");
        Assert.IsTrue(File.Exists(Path.Combine(dir, "robust.zip")), "the README saves robust.zip");
    }
}
