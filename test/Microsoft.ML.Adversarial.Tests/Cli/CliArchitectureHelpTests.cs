using System.Text.RegularExpressions;
using Microsoft.ML.Adversarial.Models;

namespace Microsoft.ML.Adversarial.Tests.Cli;

/// <summary>The commands that take --arch list, in their help, every architecture they accept (issue 29).</summary>
[TestClass]
public sealed class CliArchitectureHelpTests
{
    /// <summary>The names --arch accepts, one per architecture, from the descriptors: train lists the library's names,
    /// import torchvision's (the names of the state dicts it reads) where the architecture has one.</summary>
    private static IEnumerable<string> Accepted(string command) =>
        Architectures.Rebuildable.Select(d => command == "import" ? d.TorchVisionName ?? d.Name : d.Name);

    [TestMethod]
    [DataRow("train")]
    [DataRow("import")]
    public void HelpListsEveryArchitectureTheCommandAccepts(string command)
    {
        string dir = TestData.TempFolder();
        var help = CliTests.Advml(dir, command, "--help");
        Assert.AreEqual(0, help.Code, help.Err);
        // System.CommandLine wraps descriptions at spaces; a name is never split.
        var missing = Accepted(command).Where(n => !Regex.IsMatch(help.Out, $@"(?<![\w-]){Regex.Escape(n)}(?![\w-])")).ToList();
        Assert.AreEqual(0, missing.Count, $"{command} --help does not list {string.Join(", ", missing)}:\n{help.Out}");
    }
}
