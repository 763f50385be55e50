using System.CommandLine;
// (System.CommandLine.Command is written in full: inside Microsoft.ML.*, ML.NET's namespace Microsoft.ML.Command would hide it.)
using System.Globalization;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Evaluation;
using Microsoft.ML.Adversarial.IO;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training;
using Spectre.Console;
using TorchSharp;

namespace Microsoft.ML.Adversarial.Cli.Common;

/// <summary>A user error: printed as one line, exit code 2.</summary>
internal sealed class CliException(string message) : Exception(OneLine(message))
{
    /// <summary>The first line of a message, without .NET's "(Parameter 'x')" suffix.</summary>
    public static string OneLine(string message)
    {
        string first = message.Split('\n', 2)[0].TrimEnd();
        int p = first.LastIndexOf(" (Parameter '", StringComparison.Ordinal);
        return p > 0 ? first[..p] : first;
    }
}
