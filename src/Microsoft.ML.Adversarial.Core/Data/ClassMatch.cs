namespace Microsoft.ML.Adversarial.Data;

/// <summary>
/// Matches the classes of data to the classes of a model by name: the one rule wherever a model meets data (evaluation,
/// attacks, transfer, the ML.NET transformers, the CLI). Folder order, key order and file order never decide which
/// class a label means.
/// </summary>
public static class ClassMatch
{
    /// <summary>
    /// For each class of <paramref name="from"/>, its index in <paramref name="to"/>. Names match exactly, or else by
    /// their folder-safe form (an image folder cannot hold "T-shirt/top", so it holds "T-shirt_top"). Every class of each
    /// side must have its match on the other; otherwise the error lists both sets.
    /// </summary>
    public static int[] Map(IReadOnlyList<string> from, IReadOnlyList<string> to, string fromName = "the data", string toName = "the model")
    {
        var exact = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < to.Count; i++) exact.TryAdd(to[i], i);
        var bySafe = to.Select((name, i) => (Safe: FolderName(name), Index: i)).GroupBy(t => t.Safe)
            .Where(g => g.Count() == 1).ToDictionary(g => g.Key, g => g.First().Index, StringComparer.Ordinal);
        var map = new int[from.Count];
        var unknown = new List<string>();
        for (int i = 0; i < from.Count; i++)
        {
            if (exact.TryGetValue(from[i], out int j) || bySafe.TryGetValue(FolderName(from[i]), out j)) map[i] = j;
            else unknown.Add(from[i]);
        }
        var missing = Enumerable.Range(0, to.Count).Except(map.Where((_, i) => !unknown.Contains(from[i]))).Select(i => to[i]).ToList();
        if (unknown.Count > 0 || missing.Count > 0 || map.Distinct().Count() != map.Length)
            throw new ArgumentException(
                $"The classes of {fromName} do not match those of {toName}" +
                (unknown.Count > 0 ? $"; not in {toName}: {Show(unknown)}" : "") +
                (missing.Count > 0 ? $"; not in {fromName}: {Show(missing)}" : "") +
                $". {Capital(fromName)} has {Show(from)}; {toName} has {Show(to)}. Classes are matched by name: name the class folders " +
                "(or the label's key values) after the model's classes.");
        return map;
    }

    /// <summary>The folder-safe form of a class name: characters a file name cannot hold become '_'.</summary>
    public static string FolderName(string className)
    {
        var invalid = Path.GetInvalidFileNameChars();
        return new string(className.Select(ch => invalid.Contains(ch) || ch == '\\' || ch == '/' ? '_' : ch).ToArray());
    }

    /// <summary>A short list of names for messages: at most 12, then a count.</summary>
    public static string Show(IReadOnlyCollection<string> names)
        => "[" + string.Join(", ", names.Take(12).Select(n => $"'{n}'")) + (names.Count > 12 ? $", ... ({names.Count} in all)" : "") + "]";

    private static string Capital(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..];
}
