using System.Buffers.Binary;
using Microsoft.ML.Adversarial.Data;

namespace Microsoft.ML.Adversarial.Tests.Data;

/// <summary>Issue 27, item 3: IDX labels files hold every class index (bytes while they fit, 32-bit integers past 255).</summary>
[TestClass]
public sealed class IdxLabelTests
{
    [TestMethod]
    [DataRow("labels-idx1-ubyte")]
    [DataRow("labels-idx1-ubyte.gz")]
    public void LabelsRoundTripAsBytesOrInt32(string name)
    {
        string dir = TestData.TempFolder();
        string small = Path.Combine(dir, "small-" + name), large = Path.Combine(dir, "large-" + name);
        uint[] bytes = { 0, 7, 255 }, wide = { 0, 255, 256, 1000, 70000 };
        IdxFile.WriteLabels(small, bytes);
        IdxFile.WriteLabels(large, wide);
        CollectionAssert.AreEqual(bytes, IdxFile.ReadLabels(small));
        CollectionAssert.AreEqual(wide, IdxFile.ReadLabels(large));
        if (!name.EndsWith(".gz"))
        {
            // MNIST's own type while every label fits a byte (every IDX reader takes it); type 0x0C (int32) past 255.
            Assert.AreEqual(8 + 3, new FileInfo(small).Length);
            Assert.AreEqual(0x0801, BinaryPrimitives.ReadInt32BigEndian(File.ReadAllBytes(small)));
            Assert.AreEqual(8 + 4 * 5, new FileInfo(large).Length);
            Assert.AreEqual(0x0C01, BinaryPrimitives.ReadInt32BigEndian(File.ReadAllBytes(large)));
        }
    }

    [TestMethod]
    public void SixteenBitLabelsAreReadAndNegativeOnesRefused()
    {
        string dir = TestData.TempFolder(), path = Path.Combine(dir, "labels");
        byte[] File16(params short[] values)
        {
            var b = new byte[8 + 2 * values.Length];
            BinaryPrimitives.WriteInt32BigEndian(b, 0x0B01);
            BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(4), values.Length);
            for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteInt16BigEndian(b.AsSpan(8 + 2 * i), values[i]);
            return b;
        }
        File.WriteAllBytes(path, File16(3, 256, 1000));
        CollectionAssert.AreEqual(new uint[] { 3, 256, 1000 }, IdxFile.ReadLabels(path));
        File.WriteAllBytes(path, File16(3, -1));
        var e = Assert.ThrowsExactly<InvalidDataException>(() => IdxFile.ReadLabels(path));
        StringAssert.Contains(e.Message, "label -1 at row 1");
    }
}
