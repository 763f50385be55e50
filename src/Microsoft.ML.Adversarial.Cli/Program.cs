// advml: adversarial machine learning from the command line (Microsoft.ML.Adversarial).
using System.CommandLine;
using Microsoft.ML.Adversarial.Cli.Common;
using Microsoft.ML.Adversarial.Cli.Commands;

var root = new RootCommand("advml: train, attack, evaluate and compare image classifiers under adversarial examples (Kurakin, Goodfellow, Bengio, ICLR 2017)");
root.Subcommands.Add(TrainCommand.Create());
root.Subcommands.Add(AttackCommand.Create());
root.Subcommands.Add(EvaluateCommand.Create());
root.Subcommands.Add(TransferCommand.Create());
root.Subcommands.Add(ReproduceCommand.Create());
root.Subcommands.Add(ImportCommand.Create());
root.Subcommands.Add(PreflightCommand.Create()); // hidden: the first pass in a separate process (issue 27)
// Numbers are invariant on the command line, in files and on screen, whatever the user's locale (issue 27).
InvariantNumbers.Use(root);

var parse = root.Parse(args);
if (parse.Errors.Count > 0)
{
    // One line, non-zero exit: scripts can rely on it; --help shows the rest.
    Console.Error.WriteLine($"advml: {parse.Errors[0].Message} (advml {string.Join(' ', args.Take(1))} --help lists the options)");
    return 2;
}
try
{
    // Our handlers below turn errors into one line; System.CommandLine's own handler would print a stack trace.
    return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (CliException e)
{
    Console.Error.WriteLine($"advml: {e.Message}");
    return 2;
}
catch (OperationCanceledException)
{
    Console.Error.WriteLine("advml: interrupted. Finished models and checkpoints are kept; rerun the same command (train: add --resume) to continue.");
    return 130;
}
catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException
                               or System.Text.Json.JsonException or FormatException or NotSupportedException or ObjectDisposedException)
{
    Console.Error.WriteLine($"advml: {CliException.OneLine(e.Message)}");
    return 1;
}
catch (Exception e) when (CliException.OutOfMemory(e) is { } outOfMemory)
{
    Console.Error.WriteLine($"advml: {outOfMemory}");
    return 1;
}
catch (Exception e)
{
    // Last resort (a bug, or a native error TorchSharp surfaced): still one line and a non-zero exit, with the type to report.
    Console.Error.WriteLine($"advml: unexpected {e.GetType().Name}: {CliException.OneLine(e.Message)} (please report this with the command line)");
    return 3;
}
