using System.CommandLine;
using Microsoft.ML.Adversarial.Cli.Experiments;
using Spectre.Console;

using Microsoft.ML.Adversarial.Cli.Common;

namespace Microsoft.ML.Adversarial.Cli.Commands;

/// <summary><c>advml reproduce</c>: the paper's experiments at CPU scale, written to report.md, results.json and PNG figures.</summary>
internal static class ReproduceCommand
{
    private static readonly Option<string> ProfileOption = new("--profile") { Description = "How big a run: " + Experiments.Profile.List, DefaultValueFactory = _ => "quick" };
    private static readonly Option<string> Output = new("--output", "-o") { Description = "Folder for report.md, results.json, figures and models", DefaultValueFactory = _ => "advml-reproduce" };

    public static System.CommandLine.Command Create()
    {
        var c = new System.CommandLine.Command("reproduce", "Train and evaluate the models the paper compares, and write report.md with tables and figures");
        foreach (var o in new Option[] { ProfileOption, Output, CommonOptions.Seed, CommonOptions.Device }) c.Options.Add(o);
        CommonOptions.AddData(c);
        c.SetAction((p, ct) => Task.FromResult(Run(p, ct)));
        return c;
    }

    private static int Run(ParseResult p, CancellationToken ct)
    {
        var profile = Experiments.Profile.Parse(p.GetValue(ProfileOption)!);
        string output = p.GetValue(Output)!;
        OutputFiles.EnsureWritable(output, isFolder: true);
        var device = CommonOptions.ParseDevice(p);
        var results = new Reproduction(profile, output, (train, count) => CliData.LoadSplit(p, train, count), device, ct, p.GetValue(CommonOptions.Seed)).Run();
        var findings = ReportWriter.Findings(results);
        var figures = Figures.Write(results, output);
        OutputFiles.WriteAtomically(Path.Combine(output, "results.json"), ReportWriter.Json(results, findings));
        OutputFiles.WriteAtomically(Path.Combine(output, "report.md"), ReportWriter.Markdown(results, findings, figures));

        var table = new Table().AddColumns("finding", "paper", "ours", "reproduced?");
        foreach (var f in findings)
            table.AddRow(Markup.Escape(f.Claim), Markup.Escape(f.Paper), Markup.Escape(f.Ours),
                f.Verdict == ReportWriter.Yes ? "[green]yes[/]" : f.Verdict == ReportWriter.No ? "[red]no[/]" : $"[yellow]{ReportWriter.NotEnoughData}[/]");
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"{Markup.Escape(ReportWriter.Summary(findings))}; {results.Elapsed.TotalMinutes:F1} minutes. " +
            $"Report: [bold]{Markup.Escape(Path.Combine(output, "report.md"))}[/]");
        return 0;
    }
}
