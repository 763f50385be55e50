using System.Security.Cryptography;
using System.Text;

namespace Microsoft.ML.Adversarial.Data;

/// <summary>
/// Class names meeting class names: matching data to a model by name (the one rule wherever a model meets data:
/// evaluation, attacks, transfer, the ML.NET transformers, the CLI), and the folder each class is written to. Folder
/// order, key order and file order never decide which class a label means, and a folder written for a class reads
/// back as that class.
/// </summary>
public static class ClassMatch
{
    /// <summary>
    /// For each class of <paramref name="from"/>, its index in <paramref name="to"/>. Names are compared in Unicode
    /// normalisation form C (macOS file systems list "café" decomposed, as "e" and U+0301, where a model's class list
    /// holds it composed). They match when equal, or when one side's name is the folder <see cref="FolderNames"/> gives
    /// the other side's class (an image folder cannot hold "T-shirt/top", so it holds "T-shirt_top"), in either
    /// direction. Every class of each side must have its match on the other; otherwise the error lists both sets.
    /// </summary>
    public static int[] Map(IReadOnlyList<string> from, IReadOnlyList<string> to, string fromName = "the data", string toName = "the model")
    {
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(to);
        RefuseNormalizationTwins(from, fromName);
        RefuseNormalizationTwins(to, toName);
        var exact = Index(to);
        var byFolder = Index(FolderNames(to));
        var fromFolders = FolderNames(from);
        // Names that are all exact, or all the folders written for the classes (a folder "a_b" may be the folder of class
        // "a/b" while class "a_b" got "a_b~4"), or all classes whose folders are the other side's names (a model trained
        // on folders, "T-shirt_top", meeting data that names "T-shirt/top"), decide as a whole; only a mix is matched
        // name by name.
        int[]? whole = All(from, exact) ?? All(from, byFolder) ?? All(fromFolders, exact);
        var map = whole ?? from.Select((n, i) =>
            exact.TryGetValue(Nfc(n), out int j) || byFolder.TryGetValue(Nfc(n), out j) || exact.TryGetValue(Nfc(fromFolders[i]), out j) ? j : -1).ToArray();
        var unknown = from.Where((_, i) => map[i] < 0).ToList();
        var missing = Enumerable.Range(0, to.Count).Except(map).Select(i => to[i]).ToList();
        // A class of the other side taken by two names ("a/b" by its folder and "a_b" as it is): ambiguous, both named.
        var twice = map.Select((m, i) => (m, i)).Where(p => p.m >= 0).GroupBy(p => p.m).Where(g => g.Count() > 1)
            .Select(g => $"{Quote(to[g.Key])} (by {string.Join(" and ", g.Select(p => Quote(from[p.i])))})").ToList();
        if (unknown.Count > 0 || missing.Count > 0 || twice.Count > 0)
            throw new ArgumentException(
                $"The classes of {fromName} do not match those of {toName}" +
                (unknown.Count > 0 ? $"; not in {toName}: {Show(unknown)}" : "") +
                (missing.Count > 0 ? $"; not in {fromName}: {Show(missing)}" : "") +
                (twice.Count > 0 ? $"; matched twice: {string.Join(", ", twice)}" : "") +
                $". {Capital(fromName)} has {Show(from)}; {toName} has {Show(to)}. Classes are matched by name: name the class folders " +
                "(or the label's key values) after the model's classes" + (twice.Count > 0 ? ", and give each class one name only." : "."));
        return map;
    }

    /// <summary>
    /// The first two of <paramref name="names"/> that are different strings but the same name once normalised (Unicode
    /// form C: "café" with U+00E9 and "cafe" + U+0301), or null when there are none. Such names look the same wherever
    /// they are shown and are one class to <see cref="Map"/>.
    /// </summary>
    public static (string First, string Second)? NormalizationTwins(IEnumerable<string> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        var seen = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var name in names)
        {
            if (!seen.TryAdd(Nfc(name), name) && seen[Nfc(name)] is { } other && !string.Equals(other, name, StringComparison.Ordinal))
                return (other, name);
        }
        return null;
    }

    /// <summary>Whether two class names are the same name (equal in Unicode normalisation form C).</summary>
    public static bool SameName(string a, string b) => string.Equals(Nfc(a), Nfc(b), StringComparison.Ordinal);

    private static void RefuseNormalizationTwins(IReadOnlyList<string> names, string side)
    {
        if (NormalizationTwins(names) is { } twins)
            throw new ArgumentException($"{Capital(side)} has two classes whose names differ only in their Unicode normalisation, so they look " +
                $"the same but are written differently: {Quote(twins.First, codePoints: true)} and {Quote(twins.Second, codePoints: true)}. " +
                "Classes are matched by name: give them different names, or merge them into one class.");
    }

    /// <summary>
    /// Folder-safe form of a class name. Characters not allowed in file names, '/', '\\' and control characters become
    /// '_' ("T-shirt/top" becomes "T-shirt_top"); a name that is empty or starts with '.' gets a leading '_' ("" becomes
    /// "_", "." becomes "_.", ".." becomes "_..", ".cache" becomes "_.cache"), so it is never the folder itself, its
    /// parent, or a hidden folder that image-folder readers skip; a name longer than 200 UTF-8 bytes is cut and ends in
    /// '~' and 8 hex digits of its SHA-256. Any other name is kept as it is, so it reads back as the same class.
    /// </summary>
    public static string FolderName(string className)
    {
        className ??= "";
        var invalid = Path.GetInvalidFileNameChars();
        var chars = className.Select(ch => invalid.Contains(ch) || ch == '\\' || ch == '/' || char.IsControl(ch) ? '_' : ch).ToArray();
        string name = new(chars);
        if (name.Length == 0 || name[0] == '.') name = "_" + name;
        if (Encoding.UTF8.GetByteCount(name) > 200)
        {
            // File names are limited to 255 bytes; the hash keeps two long names that share a start apart.
            int cut = 0;
            for (int bytes = 0; cut < name.Length; cut += char.IsHighSurrogate(name[cut]) ? 2 : 1)
            {
                bytes += Encoding.UTF8.GetByteCount(name.AsSpan(cut, char.IsHighSurrogate(name[cut]) && cut + 1 < name.Length ? 2 : 1));
                if (bytes > 180) break;
            }
            name = name[..cut] + "~" + Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(className)))[..8].ToLowerInvariant();
        }
        return name;
    }

    /// <summary>
    /// The folder of each class (by index): its <see cref="FolderName"/>, made distinct by appending '~' and the class's
    /// index when an earlier class already has that folder ("a/b" and "a_b" give "a_b" and "a_b~1"). Names are compared
    /// ignoring case, so the folders stay distinct on case-insensitive file systems too; <paramref name="reserved"/>
    /// names are never used.
    /// </summary>
    public static IReadOnlyList<string> FolderNames(IReadOnlyList<string> classNames, params string[] reserved)
    {
        ArgumentNullException.ThrowIfNull(classNames);
        var used = new HashSet<string>(reserved, StringComparer.OrdinalIgnoreCase);
        var result = new string[classNames.Count];
        for (int i = 0; i < classNames.Count; i++)
        {
            string name = FolderName(classNames[i]), candidate = name;
            for (int n = 1; !used.Add(candidate); n++) candidate = n == 1 ? $"{name}~{i}" : $"{name}~{i}~{n}";
            result[i] = candidate;
        }
        return result;
    }

    /// <summary>
    /// The file, at the top of an image folder, that names the class of each class folder, in the classes' order
    /// (written by the image-folder writer, read by the image-folder reader): the folder "T-shirt_top" reads back as the
    /// class "T-shirt/top", and the classes keep their order. JSON: <c>{"classes": [{"name": "T-shirt/top", "folder": "T-shirt_top"}, ...]}</c>.
    /// Without it a folder's name is its class's name, classes in ordinal order of the folder names.
    /// </summary>
    public const string ClassNamesFile = "class-names.json";

    private sealed record ClassEntry(string Name, string Folder);
    private sealed record ClassNamesDocument(IReadOnlyList<ClassEntry> Classes);
    private static readonly System.Text.Json.JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.CamelCase, WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>Writes <see cref="ClassNamesFile"/> in <paramref name="folder"/>: each class name with its folder (<see cref="FolderNames"/>), in order.</summary>
    public static void WriteClassNames(string folder, IReadOnlyList<string> classNames, IReadOnlyList<string> folders)
    {
        ArgumentNullException.ThrowIfNull(classNames);
        ArgumentNullException.ThrowIfNull(folders);
        if (classNames.Count != folders.Count) throw new ArgumentException($"{classNames.Count} class names but {folders.Count} folders.", nameof(folders));
        var doc = new ClassNamesDocument(classNames.Select((n, i) => new ClassEntry(n, folders[i])).ToList());
        IO.AtomicFile.WriteAllText(Path.Combine(folder, ClassNamesFile), System.Text.Json.JsonSerializer.Serialize(doc, Json));
    }

    /// <summary>
    /// The (class name, folder) pairs of <paramref name="folder"/>'s <see cref="ClassNamesFile"/> in the classes' order, or
    /// null when there is none. A file that is not valid (bad JSON, a folder that is not a plain folder name, a name or
    /// folder twice) is refused with <see cref="InvalidDataException"/> naming it.
    /// </summary>
    public static IReadOnlyList<(string Name, string Folder)>? ReadClassNames(string folder)
    {
        string path = Path.Combine(folder, ClassNamesFile);
        if (!File.Exists(path)) return null;
        string fix = $"Fix or delete '{path}' (without it each class is named after its folder).";
        ClassNamesDocument? doc;
        try { doc = System.Text.Json.JsonSerializer.Deserialize<ClassNamesDocument>(File.ReadAllText(path), Json); }
        catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"'{path}' is not a class-name file ({e.Message}). {fix}", e); }
        if (doc?.Classes is not { } classes || classes.Any(c => c is null || c.Name is null || c.Folder is null))
            throw new InvalidDataException($"'{path}' has no \"classes\" list of {{\"name\", \"folder\"}} entries. {fix}");
        var badFolder = classes.FirstOrDefault(c => c.Folder.Length == 0 || c.Folder != Path.GetFileName(c.Folder) || c.Folder is "." or ".."
            || c.Folder.IndexOfAny(new[] { '/', '\\' }) >= 0);
        if (badFolder is not null)
            throw new InvalidDataException($"'{path}' gives class '{badFolder.Name}' the folder '{badFolder.Folder}', which is not a folder name inside the image folder. {fix}");
        var twice = classes.GroupBy(c => c.Name, StringComparer.Ordinal).Concat(classes.GroupBy(c => c.Folder, StringComparer.Ordinal)).FirstOrDefault(g => g.Count() > 1);
        if (twice is not null)
            throw new InvalidDataException($"'{path}' lists '{twice.Key}' {twice.Count()} times; each class and folder appears once. {fix}");
        return classes.Select(c => (c.Name, c.Folder)).ToList();
    }

    private static Dictionary<string, int> Index(IReadOnlyList<string> names)
    {
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < names.Count; i++) index.TryAdd(Nfc(names[i]), i);
        return index;
    }

    private static string Nfc(string name) => name.IsNormalized(NormalizationForm.FormC) ? name : name.Normalize(NormalizationForm.FormC);

    /// <summary>The map when every name is found and no two share a class; else null.</summary>
    private static int[]? All(IReadOnlyList<string> from, Dictionary<string, int> index)
    {
        var map = new int[from.Count];
        for (int i = 0; i < from.Count; i++)
            if (!index.TryGetValue(Nfc(from[i]), out map[i])) return null;
        return map.Distinct().Count() == map.Length ? map : null;
    }

    /// <summary>A short list of names for messages: at most 12, then a count; a name not in Unicode form C shows its code points (<see cref="Quote"/>).</summary>
    public static string Show(IReadOnlyCollection<string> names)
        => "[" + string.Join(", ", names.Take(12).Select(n => Quote(n))) + (names.Count > 12 ? $", ... ({names.Count} in all)" : "") + "]";

    /// <summary>
    /// A class name quoted for a message, followed by its code points when <paramref name="codePoints"/> is set or the
    /// name is not in Unicode form C ("'café' (U+0063 U+0061 U+0066 U+0065 U+0301, decomposed)"): two such names print alike.
    /// </summary>
    public static string Quote(string name, bool codePoints = false)
    {
        bool composed = name.IsNormalized(NormalizationForm.FormC);
        if (!codePoints && composed) return $"'{name}'";
        var points = string.Join(" ", name.EnumerateRunes().Select(r => $"U+{r.Value:X4}"));
        return $"'{name}' ({points}{(composed ? "" : ", decomposed")})";
    }

    private static string Capital(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..];
}
