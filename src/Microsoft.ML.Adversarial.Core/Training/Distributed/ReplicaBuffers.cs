using System.Text;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Training.Distributed;

/// <summary>
/// Every replica's module buffers (BatchNorm's running mean and variance and its batch counter), which differ per rank
/// when BatchNorm statistics are kept per replica: the bytes one rank contributes, and the checkpoint file that holds all
/// ranks' (<see cref="Checkpoint.ReplicaBuffersFile"/>), so that <c>--resume</c> gives each rank back its own.
/// </summary>
/// <remarks>
/// File layout (little-endian): the magic <c>ADVMLRB1</c>; int32 ranks; int32 buffers; per buffer its name, dtype
/// (length-prefixed UTF-8), int32 dimensions and int64 sizes; int64 bytes per rank; then each rank's bytes, rank 0 first,
/// every buffer's raw contents in <c>named_buffers()</c> order.
/// </remarks>
internal static class ReplicaBuffers
{
    private static readonly byte[] Magic = Encoding.ASCII.GetBytes("ADVMLRB1");

    private sealed record Entry(string Name, string DType, long[] Shape);

    /// <summary>True when <paramref name="model"/> has buffers (a network without BatchNorm has none: nothing per replica).</summary>
    public static bool Any(nn.Module model) => model.named_buffers().Any();

    /// <summary>This replica's buffers, one after another (the part it contributes to the gather).</summary>
    public static byte[] Bytes(nn.Module model)
    {
        using var scope = NewDisposeScope();
        var buffers = model.named_buffers().Select(b => b.buffer.detach().cpu().contiguous()).ToList();
        var bytes = new byte[buffers.Sum(b => (long)b.bytes.Length)];
        int offset = 0;
        foreach (var b in buffers)
        {
            b.bytes.CopyTo(bytes.AsSpan(offset));
            offset += b.bytes.Length;
        }
        return bytes;
    }

    /// <summary>Bytes one replica contributes (the length of <see cref="Bytes"/>).</summary>
    public static int Length(nn.Module model)
        => checked((int)model.named_buffers().Sum(b => b.buffer.numel() * b.buffer.ElementSize));

    /// <summary>Sets <paramref name="model"/>'s buffers (on their own device) from one replica's bytes.</summary>
    public static void Load(nn.Module model, ReadOnlySpan<byte> bytes)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        int offset = 0;
        foreach (var (_, buffer) in model.named_buffers())
        {
            var cpu = empty(buffer.shape, buffer.dtype);
            int n = cpu.bytes.Length;
            bytes.Slice(offset, n).CopyTo(cpu.bytes);
            buffer.copy_(cpu);
            offset += n;
        }
        if (offset != bytes.Length) throw new InvalidOperationException($"internal: {bytes.Length} bytes for buffers of {offset}");
    }

    /// <summary>Writes every rank's bytes (<paramref name="ranks"/>[r] from rank r) with <paramref name="model"/>'s buffer layout.</summary>
    public static void Write(Stream stream, nn.Module model, IReadOnlyList<byte[]> ranks)
    {
        var layout = Layout(model);
        using var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        w.Write(Magic);
        w.Write(ranks.Count);
        w.Write(layout.Count);
        foreach (var e in layout)
        {
            w.Write(e.Name);
            w.Write(e.DType);
            w.Write(e.Shape.Length);
            foreach (long d in e.Shape) w.Write(d);
        }
        long perRank = ranks.Count == 0 ? 0 : ranks[0].LongLength;
        w.Write(perRank);
        foreach (var r in ranks)
        {
            if (r.LongLength != perRank) throw new InvalidOperationException("internal: the ranks' buffers differ in size");
            w.Write(r);
        }
    }

    /// <summary>
    /// Every rank's bytes from a file written by <see cref="Write"/>, checked against <paramref name="model"/>'s buffers
    /// and <paramref name="ranks"/> (the job's size); <paramref name="source"/> names the file in errors.
    /// </summary>
    public static byte[][] Read(byte[] file, nn.Module model, int ranks, string source)
    {
        var (layout, parts) = Parse(file, source);
        var expected = Layout(model);
        if (!layout.Select(Describe).SequenceEqual(expected.Select(Describe)))
            throw new InvalidDataException(
                $"'{source}' holds the buffers of another network ({string.Join(", ", layout.Select(Describe).Take(3))}, ...; this one has " +
                $"{string.Join(", ", expected.Select(Describe).Take(3))}, ...). Resume with the model options that wrote the checkpoint, or start a new run.");
        if (parts.Length != ranks)
            throw new InvalidDataException($"'{source}' holds the BatchNorm statistics of {parts.Length} ranks; this job has {ranks}. Resume with mpirun -np {parts.Length}.");
        return parts;
    }

    /// <summary>Every rank's bytes from the file at <paramref name="path"/> (no model to check against).</summary>
    public static byte[][] Read(string path) => Parse(File.ReadAllBytes(path), path).Ranks;

    private static (List<Entry> Layout, byte[][] Ranks) Parse(byte[] file, string source)
    {
        try
        {
            using var r = new BinaryReader(new MemoryStream(file, writable: false), Encoding.UTF8);
            if (!r.ReadBytes(Magic.Length).AsSpan().SequenceEqual(Magic)) throw new InvalidDataException("not a replica buffer file");
            int ranks = r.ReadInt32(), count = r.ReadInt32();
            if (ranks < 1 || count < 0) throw new InvalidDataException($"{ranks} ranks, {count} buffers");
            var layout = new List<Entry>(count);
            for (int i = 0; i < count; i++)
            {
                string name = r.ReadString(), dtype = r.ReadString();
                int dims = r.ReadInt32();
                if (dims is < 0 or > 16) throw new InvalidDataException($"buffer '{name}' has {dims} dimensions");
                var shape = new long[dims];
                for (int d = 0; d < dims; d++) shape[d] = r.ReadInt64();
                layout.Add(new Entry(name, dtype, shape));
            }
            long perRank = r.ReadInt64();
            if (perRank < 0 || perRank * ranks != file.Length - r.BaseStream.Position)
                throw new InvalidDataException($"{file.Length - r.BaseStream.Position} bytes of data for {ranks} ranks of {perRank}");
            var parts = new byte[ranks][];
            for (int i = 0; i < ranks; i++) parts[i] = r.ReadBytes((int)perRank);
            return (layout, parts);
        }
        catch (Exception e) when (e is EndOfStreamException or InvalidDataException or IOException)
        {
            throw new InvalidDataException($"'{source}' is not a valid file of the replicas' BatchNorm statistics ({e.Message}). Delete the checkpoint folder to start over.", e);
        }
    }

    private static List<Entry> Layout(nn.Module model)
        => model.named_buffers().Select(b => new Entry(b.name, b.buffer.dtype.ToString(), b.buffer.shape)).ToList();

    private static string Describe(Entry e) => $"{e.Name} {e.DType}[{string.Join(",", e.Shape)}]";
}
