using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Microsoft.ML.Adversarial.Models;

/// <summary>
/// The name, shape, strides and storage offset of each tensor in a <c>torch.save</c> zip, read from its <c>data.pkl</c>
/// without building any tensor. TorchSharp.PyBridge reads contiguous tensors that start their storage only, and when it
/// fails it cannot say which tensor it was on; this names it. A small pickle machine for what <c>torch.save</c> writes
/// (protocols 2 to 4): values it does not model are opaque, and an opcode it does not know ends the reading (no answer).
/// </summary>
internal static class PickledTensorLayouts
{
    /// <summary>A tensor as the pickle lays it out over its storage.</summary>
    internal sealed record Layout(string Name, long[] Shape, long[] Strides, long Offset)
    {
        /// <summary>Whether the loader reads it: strides of a row-major tensor (dimensions of size 1 aside) starting its storage.</summary>
        public bool Readable
        {
            get
            {
                long expected = 1;
                for (int d = Shape.Length - 1; d >= 0; d--)
                {
                    if (Shape[d] != 1 && Strides[d] != expected) return false;
                    expected *= Shape[d];
                }
                return Offset == 0;
            }
        }
    }

    private sealed record Global(string Name);
    private sealed record Reduced(Layout? Tensor);
    private sealed class Mark;
    private static readonly object Opaque = new();

    /// <summary>The tensors of the file's <c>data.pkl</c>, each named by its dictionary key, or null when it cannot be read.</summary>
    public static IReadOnlyList<Layout>? Read(string path)
    {
        try
        {
            using var zip = ZipFile.OpenRead(path);
            var entry = zip.Entries.FirstOrDefault(e => e.FullName.EndsWith("data.pkl", StringComparison.Ordinal));
            if (entry is null || entry.Length > 64 << 20) return null;
            using var s = entry.Open();
            var bytes = new byte[entry.Length];
            s.ReadExactly(bytes);
            return Run(bytes);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or EndOfStreamException or ArgumentException or InvalidCastException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    private static List<Layout>? Run(byte[] p)
    {
        var stack = new List<object?>();
        var memo = new Dictionary<long, object?>();
        var found = new List<Layout>();
        int i = 0;
        object? Pop() { var v = stack[^1]; stack.RemoveAt(stack.Count - 1); return v; }
        List<object?> PopToMark()
        {
            int m = stack.FindLastIndex(v => v is Mark);
            var items = stack.GetRange(m + 1, stack.Count - m - 1);
            stack.RemoveRange(m, stack.Count - m);
            return items;
        }
        int U8() => p[i++];
        int I32() { int v = BinaryPrimitives.ReadInt32LittleEndian(p.AsSpan(i)); i += 4; return v; }
        string Text(int n) { string v = Encoding.UTF8.GetString(p, i, n); i += n; return v; }
        string Line() { int end = Array.IndexOf(p, (byte)'\n', i); string v = Encoding.UTF8.GetString(p, i, end - i); i = end + 1; return v; }
        // Every tensor set into a dictionary (a state dict, or one inside a checkpoint) is collected under its key.
        void SetItems(List<object?> items)
        {
            for (int k = 0; k + 1 < items.Count; k += 2)
                if (items[k] is string key && items[k + 1] is Reduced { Tensor: { } t }) found.Add(t with { Name = key });
        }
        while (i < p.Length)
        {
            byte op = p[i++];
            switch (op)
            {
                case 0x80: i++; break;                                   // PROTO
                case 0x95: i += 8; break;                                // FRAME
                case (byte)'.': return found;                           // STOP
                case (byte)'(': stack.Add(new Mark()); break;           // MARK
                case (byte)'c': stack.Add(new Global(Line() + "." + Line())); break;   // GLOBAL
                case 0x93: { var name = Pop() as string; var module = Pop() as string; stack.Add(new Global(module + "." + name)); break; } // STACK_GLOBAL
                case (byte)'}': case (byte)']': stack.Add(Opaque); break; // EMPTY_DICT, EMPTY_LIST
                case (byte)')': stack.Add(Array.Empty<object?>()); break;            // EMPTY_TUPLE
                case (byte)'N': stack.Add(null); break;
                case 0x88: case 0x89: stack.Add(op == 0x88); break;     // NEWTRUE, NEWFALSE
                case (byte)'K': stack.Add((long)U8()); break;           // BININT1
                case (byte)'M': stack.Add((long)BinaryPrimitives.ReadUInt16LittleEndian(p.AsSpan(i))); i += 2; break; // BININT2
                case (byte)'J': stack.Add((long)I32()); break;          // BININT
                case 0x8a: { int n = U8(); long v = 0; for (int b = n - 1; b >= 0; b--) v = (v << 8) | p[i + b]; if (n is > 0 and < 8 && (p[i + n - 1] & 0x80) != 0) v -= 1L << (8 * n); i += n; stack.Add(v); break; } // LONG1
                case (byte)'G': i += 8; stack.Add(Opaque); break;       // BINFLOAT
                case (byte)'X': { int n = I32(); stack.Add(Text(n)); break; }        // BINUNICODE
                case 0x8c: { int n = U8(); stack.Add(Text(n)); break; }              // SHORT_BINUNICODE
                case (byte)'B': { int n = I32(); i += n; stack.Add(Opaque); break; } // BINBYTES
                case (byte)'C': { int n = U8(); i += n; stack.Add(Opaque); break; }  // SHORT_BINBYTES
                case (byte)'q': memo[U8()] = stack[^1]; break;          // BINPUT
                case (byte)'r': memo[I32()] = stack[^1]; break;         // LONG_BINPUT
                case 0x94: memo[memo.Count] = stack[^1]; break;         // MEMOIZE
                case (byte)'h': stack.Add(memo[U8()]); break;           // BINGET
                case (byte)'j': stack.Add(memo[I32()]); break;          // LONG_BINGET
                case (byte)'Q': Pop(); stack.Add(Opaque); break;        // BINPERSID: the storage
                case (byte)'t': stack.Add(PopToMark().ToArray()); break;             // TUPLE
                case 0x85: stack.Add(new[] { Pop() }); break;           // TUPLE1
                case 0x86: { var b = Pop(); var a = Pop(); stack.Add(new[] { a, b }); break; }
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); stack.Add(new[] { a, b, c }); break; }
                case (byte)'R':                                          // REDUCE
                case 0x81:                                               // NEWOBJ
                {
                    var args = Pop() as object?[];
                    var callable = Pop();
                    stack.Add(callable is Global { Name: "torch._utils._rebuild_tensor_v2" or "torch._utils._rebuild_tensor" } && args is { Length: >= 4 }
                        ? new Reduced(new Layout("", Longs(args[2]), Longs(args[3]), (long)args[1]!))
                        : Opaque);
                    break;
                }
                case (byte)'s': { var v = Pop(); var k = Pop(); SetItems(new List<object?> { k, v }); break; } // SETITEM
                case (byte)'u': SetItems(PopToMark()); break;                                                 // SETITEMS
                case (byte)'a': Pop(); break;                           // APPEND
                case (byte)'e': PopToMark(); break;                     // APPENDS
                case (byte)'b': Pop(); break;                           // BUILD: state set on the object below
                case (byte)'0': Pop(); break;                           // POP
                default: return null;                                   // not what torch.save writes: no answer
            }
        }
        return null;
    }

    private static long[] Longs(object? tuple) => ((object?[])tuple!).Select(v => (long)v!).ToArray();
}
