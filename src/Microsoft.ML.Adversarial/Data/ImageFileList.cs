using System.Text;

namespace Microsoft.ML.Adversarial.Data;

/// <summary>
/// The files of an image folder, stored compactly so that a streamed folder of millions of files costs little memory:
/// every path (relative to the folder) in one UTF-8 byte buffer with an end offset each, and each file's class index as
/// one byte (up to 256 classes) or an int. About 25 bytes a file for "class/000123.png", against ~170 for a list of
/// (path, label) strings. Paths come back as the strings they were added as (file names read from the file system are
/// well-formed UTF-16, which UTF-8 stores losslessly).
/// </summary>
internal sealed class ImageFileList
{
    private readonly byte[] _paths;
    private readonly int[] _ends;
    private readonly byte[]? _smallClasses;
    private readonly int[]? _classes;

    private ImageFileList(byte[] paths, int[] ends, byte[]? smallClasses, int[]? classes)
    {
        _paths = paths;
        _ends = ends;
        _smallClasses = smallClasses;
        _classes = classes;
    }

    /// <summary>Number of files.</summary>
    public int Count => _ends.Length;

    /// <summary>The path of file <paramref name="i"/>, relative to the folder.</summary>
    public string PathOf(int i) => Encoding.UTF8.GetString(PathBytes(i));

    /// <summary>The UTF-8 bytes of file <paramref name="i"/>'s relative path.</summary>
    public ReadOnlySpan<byte> PathBytes(int i)
    {
        int start = i == 0 ? 0 : _ends[i - 1];
        return _paths.AsSpan(start, _ends[i] - start);
    }

    /// <summary>The class index of file <paramref name="i"/>.</summary>
    public int ClassOf(int i) => _smallClasses is { } small ? small[i] : _classes![i];

    /// <summary>Collects files in order, then <see cref="Build"/>s the list.</summary>
    public sealed class Builder(int classCount)
    {
        private byte[] _paths = new byte[4096];
        private int _length;
        private readonly List<int> _ends = new();
        private readonly List<int> _classes = new();

        /// <summary>Appends a file (its path relative to the folder) of class <paramref name="classIndex"/>.</summary>
        public void Add(string relativePath, int classIndex)
        {
            if ((uint)classIndex >= (uint)classCount) throw new ArgumentOutOfRangeException(nameof(classIndex), classIndex, $"Class index {classIndex} is not below the class count {classCount}.");
            int bytes = Encoding.UTF8.GetByteCount(relativePath);
            if (_length + (long)bytes > Array.MaxLength)
                throw new InvalidOperationException($"The image folder's file paths exceed {Array.MaxLength} bytes of UTF-8 ({_ends.Count} files so far); split the folder.");
            if (_length + bytes > _paths.Length) Array.Resize(ref _paths, (int)Math.Min(Array.MaxLength, Math.Max(_length + (long)bytes, 2L * _paths.Length)));
            _length += Encoding.UTF8.GetBytes(relativePath, _paths.AsSpan(_length));
            _ends.Add(_length);
            _classes.Add(classIndex);
        }

        /// <summary>The list, trimmed to its size.</summary>
        public ImageFileList Build()
        {
            var paths = _paths.AsSpan(0, _length).ToArray();
            return classCount <= 256
                ? new ImageFileList(paths, _ends.ToArray(), _classes.Select(c => (byte)c).ToArray(), null)
                : new ImageFileList(paths, _ends.ToArray(), null, _classes.ToArray());
        }
    }
}
