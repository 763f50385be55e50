using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Microsoft.ML.Adversarial.Data;

/// <summary>
/// Images written once, row after row, to a temporary file of float32 pixels and then read back by row at their offset:
/// for data that comes as a sequential stream (an ML.NET <c>IDataView</c> cursor) and is larger than memory. Memory
/// holds the labels only; the file is deleted when the source is disposed (or the process ends). Its
/// <see cref="Fingerprint"/> equals <see cref="ImageSet.Fingerprint"/> of the same rows, so a run resumes across both.
/// </summary>
public sealed class RowFileSource : IImageSource, IDisposable
{
    private readonly FileStream _file;
    private readonly uint[] _labels;
    private readonly int _imageSize;
    private readonly string _fingerprint;

    private RowFileSource(FileStream file, uint[] labels, IReadOnlyList<string> classNames, (int, int, int) shape, string fingerprint)
    {
        _file = file;
        _labels = labels;
        ClassNames = classNames;
        ImageShape = shape;
        _imageSize = shape.Item1 * shape.Item2 * shape.Item3;
        _fingerprint = fingerprint;
    }

    /// <summary>Starts a file in <paramref name="folder"/> (the temporary folder when null) for images of <paramref name="shape"/>.</summary>
    public static Writer Create((int Channels, int Height, int Width) shape, string? folder = null) => new(shape, folder ?? Path.GetTempPath());

    /// <summary>Appends rows, then <see cref="Complete"/> gives the source. Disposed without completing, it deletes the file.</summary>
    public sealed class Writer : IDisposable
    {
        private readonly FileStream _file;
        private readonly (int C, int H, int W) _shape;
        private readonly List<uint> _labels = new();
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private bool _completed;

        internal Writer((int C, int H, int W) shape, string folder)
        {
            _shape = shape;
            Directory.CreateDirectory(folder);
            string path = Path.Combine(folder, $"advml-rows-{Guid.NewGuid():N}.f32");
            try
            {
                _file = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16, FileOptions.DeleteOnClose);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new IOException($"Cannot write the row file '{path}' ({e.Message}): data read from a stream is kept there, not in memory. Choose a writable folder with room for the data.", e);
            }
        }

        /// <summary>Rows written so far.</summary>
        public int RowCount => _labels.Count;

        /// <summary>Appends one image (C * H * W values) and its zero-based label.</summary>
        public void Append(ReadOnlySpan<float> pixels, uint label)
        {
            if (pixels.Length != _shape.C * _shape.H * _shape.W)
                throw new ArgumentException($"An image of shape {_shape} has {_shape.C * _shape.H * _shape.W} values; {pixels.Length} were given.", nameof(pixels));
            Span<byte> l = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(l, label);
            _hash.AppendData(l); // as ImageSet.Fingerprint: label, then pixels, row by row
            var bytes = MemoryMarshal.AsBytes(pixels);
            _hash.AppendData(bytes);
            try { _file.Write(bytes); }
            catch (IOException e) { throw new IOException($"Writing row {_labels.Count} to '{_file.Name}' failed ({e.Message}); the disk may be full. Choose a folder with room for the data.", e); }
            _labels.Add(label);
        }

        /// <summary>The rows written, readable by row; every label must be below the number of <paramref name="classNames"/>.</summary>
        public RowFileSource Complete(IReadOnlyList<string> classNames)
        {
            ArgumentNullException.ThrowIfNull(classNames);
            for (int i = 0; i < _labels.Count; i++)
                if (_labels[i] >= classNames.Count)
                    throw new ArgumentOutOfRangeException(nameof(classNames), $"Label {_labels[i]} of row {i} is not below the class count {classNames.Count}.");
            _file.Flush();
            _completed = true;
            return new RowFileSource(_file, _labels.ToArray(), classNames, _shape, Convert.ToHexString(_hash.GetHashAndReset())[..32]);
        }

        /// <summary>Deletes the file unless <see cref="Complete"/> handed it to a source.</summary>
        public void Dispose()
        {
            _hash.Dispose();
            if (!_completed) _file.Dispose();
        }
    }

    /// <inheritdoc/>
    public int RowCount => _labels.Length;

    /// <inheritdoc/>
    public (int Channels, int Height, int Width) ImageShape { get; }

    /// <inheritdoc/>
    public IReadOnlyList<string> ClassNames { get; }

    /// <inheritdoc/>
    public uint GetLabel(int row) => _labels[row];

    /// <inheritdoc/>
    public void ReadPixels(ReadOnlySpan<int> rows, Span<float> destination)
    {
        for (int i = 0; i < rows.Length; i++)
        {
            int row = rows[i];
            if ((uint)row >= (uint)RowCount) throw new ArgumentOutOfRangeException(nameof(rows), row, $"Row {row} is not in the {RowCount} rows of '{_file.Name}'.");
            var target = MemoryMarshal.AsBytes(destination.Slice(i * _imageSize, _imageSize));
            long offset = (long)row * _imageSize * sizeof(float);
            for (int read = 0; read < target.Length;)
            {
                int n = RandomAccess.Read(_file.SafeFileHandle, target[read..], offset + read);
                if (n == 0) throw new InvalidDataException($"Row file '{_file.Name}' ends inside row {row}; it was changed while in use.");
                read += n;
            }
        }
    }

    /// <summary>SHA-256 of every label and pixel in row order, as <see cref="ImageSet.Fingerprint"/> (computed while writing).</summary>
    public string Fingerprint() => _fingerprint;

    /// <summary>Closes and deletes the file.</summary>
    public void Dispose() => _file.Dispose();
}
