using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Data;

namespace Microsoft.ML.Adversarial.Tests;

/// <summary>Shared access to the real Fashion-MNIST files and small helpers for reading IDataViews.</summary>
internal static class TestData
{
    public static string Folder => FashionMnist.ResolveDefaultFolder();

    public static ImageSet Train(int count, SubsetMode mode = SubsetMode.Stratified)
        => FashionMnist.Load(new FashionMnistOptions { Folder = Folder, Split = FashionMnistSplit.Train, Count = count, Subset = mode });

    public static ImageSet Test(int count, SubsetMode mode = SubsetMode.Stratified)
        => FashionMnist.Load(new FashionMnistOptions { Folder = Folder, Split = FashionMnistSplit.Test, Count = count, Subset = mode });

    /// <summary>
    /// The output of another project of the solution, built in this test run's configuration and framework
    /// (the test project references it with ReferenceOutputAssembly=false, so it is built first).
    /// </summary>
    public static string BuiltAssembly(string projectFolder, string fileName)
    {
        // This assembly runs from test/Microsoft.ML.Adversarial.Tests/bin/<Configuration>/<tfm>/.
        var dir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string path = Path.Combine(PythonReference.RepoRoot(), projectFolder, "bin", dir.Parent!.Name, dir.Name, fileName);
        Assert.IsTrue(File.Exists(path), $"{fileName} is not built at {path}; build the solution first.");
        return path;
    }

    public static string TempFolder()
    {
        string dir = Path.Combine(Path.GetTempPath(), "advml-tests", Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>An image set as the IDataView ML.NET pipelines read.</summary>
    public static IDataView View(this ImageSet images) => new ImageSetDataView(images);

    public static List<float[]> ReadVectors(ImageSet data, string column) => ReadVectors(data.View(), column);
    public static List<uint> ReadKeys(ImageSet data, string column = "Label") => ReadKeys(data.View(), column);
    public static string[] KeyNames(ImageSet data, string column = "Label") => KeyNames(data.View(), column);

    public static List<float[]> ReadVectors(IDataView data, string column)
    {
        var col = data.Schema[column];
        using var cursor = data.GetRowCursor(new[] { col });
        var getter = cursor.GetGetter<VBuffer<float>>(col);
        var buffer = default(VBuffer<float>);
        var rows = new List<float[]>();
        while (cursor.MoveNext())
        {
            getter(ref buffer);
            rows.Add(buffer.DenseValues().ToArray());
        }
        return rows;
    }

    public static List<uint> ReadKeys(IDataView data, string column = "Label")
    {
        var col = data.Schema[column];
        using var cursor = data.GetRowCursor(new[] { col });
        var getter = cursor.GetGetter<uint>(col);
        uint v = 0;
        var rows = new List<uint>();
        while (cursor.MoveNext())
        {
            getter(ref v);
            rows.Add(v);
        }
        return rows;
    }

    public static string[] KeyNames(IDataView data, string column = "Label")
    {
        var names = default(VBuffer<ReadOnlyMemory<char>>);
        data.Schema[column].Annotations.GetValue("KeyValues", ref names);
        return names.DenseValues().Select(n => n.ToString()).ToArray();
    }
}
