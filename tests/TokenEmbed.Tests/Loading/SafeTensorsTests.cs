using System.Buffers.Binary;
using System.Runtime.InteropServices;
using NUnit.Framework;
using TokenEmbed.Loading;
using TokenEmbed.Tests.Support;

namespace TokenEmbed.Tests.Loading;

[TestFixture]
public sealed class SafeTensorsTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "TokenEmbed.Tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void TearDown()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private string TempPath(string name) => Path.Combine(_dir, name);

    private static ModelLoadException AssertOpenFails(string path, string? tensor = null)
    {
        var ex = Assert.Throws<ModelLoadException>(() => SafeTensorsFile.Open(path).Dispose())!;
        Assert.That(ex.Message, Does.Contain(path), "the message names the file");
        Assert.That(ex.FilePath, Is.EqualTo(path));
        if (tensor != null)
        {
            Assert.That(ex.TensorName, Is.EqualTo(tensor));
            Assert.That(ex.Message, Does.Contain($"'{tensor}'"), "the message names the tensor");
        }
        return ex;
    }

    private static float[] RandomFloats(int n, int seed, float scale = 4f)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1) * scale).ToArray();
    }

    // ---------------------------------------------------------------- round trip

    [Test]
    public void RoundTrip_EveryDType_PreservesDTypeShapeBytesAndMetadata()
    {
        var rng = new Random(1);
        var tensors = new List<(string Name, SafeTensorDType DType, long[] Shape, byte[] Data)>();
        foreach (var dtype in Enum.GetValues<SafeTensorDType>())
        {
            long[] shape = [3, 5];
            var data = new byte[15 * dtype.ElementSize()];
            rng.NextBytes(data);
            tensors.Add(($"t.{dtype}", dtype, shape, data));
        }
        tensors.Add(("scalar", SafeTensorDType.F32, [], SafeTensorsWriter.Bytes([42.5f])));
        tensors.Add(("empty", SafeTensorDType.F16, [0, 7], []));
        var path = TempPath("all.safetensors");
        SafeTensorsWriter.Write(path, tensors, new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcödé" });

        using var file = SafeTensorsFile.Open(path);
        Assert.That(file.FilePath, Is.EqualTo(path));
        Assert.That(file.Tensors, Has.Count.EqualTo(tensors.Count));
        Assert.That(file.Metadata, Is.EquivalentTo(new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcödé" }));
        var raw = File.ReadAllBytes(path);
        var headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(raw);
        Assert.That(headerLength % 8, Is.Zero, "header padded to a multiple of 8");
        long expectedOffset = 8 + headerLength;
        foreach (var (name, dtype, shape, data) in tensors)
        {
            var info = file.Tensors[name];
            Assert.That(info.Name, Is.EqualTo(name));
            Assert.That(info.DType, Is.EqualTo(dtype), name);
            Assert.That(info.Shape, Is.EqualTo(shape), name);
            Assert.That(info.ByteLength, Is.EqualTo(data.Length), name);
            Assert.That(info.DataOffset, Is.EqualTo(expectedOffset), name + ": absolute offset");
            Assert.That(info.FilePath, Is.EqualTo(path));
            Assert.That(file.GetBytes(info).ToArray(), Is.EqualTo(data), name);
            Assert.That(raw.AsSpan((int)info.DataOffset, data.Length).ToArray(), Is.EqualTo(data), name + ": offset points at the data");
            unsafe
            {
                if (data.Length > 0)
                    Assert.That(*file.GetPointer(info), Is.EqualTo(data[0]), name);
            }
            expectedOffset += data.Length;
        }
        Assert.That(file.ReadAsFloat32("scalar"), Is.EqualTo(new[] { 42.5f }));
        Assert.That(file.ReadAsFloat32("empty"), Is.Empty);
    }

    [Test]
    public void RoundTrip_IntegerDTypes_ReadBackAsTheirValues()
    {
        long[] i64 = [long.MinValue, -1, 0, 1, long.MaxValue];
        int[] i32 = [int.MinValue, -7, 0, 7, int.MaxValue];
        short[] i16 = [short.MinValue, -3, 0, 3, short.MaxValue];
        sbyte[] i8 = [sbyte.MinValue, -1, 0, 1, sbyte.MaxValue];
        byte[] u8 = [0, 1, 2, 254, 255];
        byte[] b = [0, 1, 1, 0, 1];
        var path = TempPath("ints.safetensors");
        SafeTensorsWriter.Write(path,
        [
            ("i64", SafeTensorDType.I64, [5], SafeTensorsWriter.Bytes(i64)),
            ("i32", SafeTensorDType.I32, [5], SafeTensorsWriter.Bytes(i32)),
            ("i16", SafeTensorDType.I16, [5], SafeTensorsWriter.Bytes(i16)),
            ("i8", SafeTensorDType.I8, [5], SafeTensorsWriter.Bytes(i8)),
            ("u8", SafeTensorDType.U8, [5], u8),
            ("bool", SafeTensorDType.BOOL, [5], b),
        ]);
        using var file = SafeTensorsFile.Open(path);
        Assert.That(file.Metadata, Is.Empty);
        Assert.That(MemoryMarshal.Cast<byte, long>(file.GetBytes(file.Tensors["i64"])).ToArray(), Is.EqualTo(i64));
        Assert.That(MemoryMarshal.Cast<byte, int>(file.GetBytes(file.Tensors["i32"])).ToArray(), Is.EqualTo(i32));
        Assert.That(MemoryMarshal.Cast<byte, short>(file.GetBytes(file.Tensors["i16"])).ToArray(), Is.EqualTo(i16));
        Assert.That(MemoryMarshal.Cast<byte, sbyte>(file.GetBytes(file.Tensors["i8"])).ToArray(), Is.EqualTo(i8));
        Assert.That(file.GetBytes(file.Tensors["u8"]).ToArray(), Is.EqualTo(u8));
        Assert.That(file.GetBytes(file.Tensors["bool"]).ToArray(), Is.EqualTo(b));

        var ex = Assert.Throws<ModelLoadException>(() => file.ReadAsFloat32("i64"))!;
        Assert.That(ex.TensorName, Is.EqualTo("i64"));
        Assert.That(ex.Message, Does.Contain(path).And.Contain("I64"));
    }

    [TestCase("F32")]
    [TestCase("F16")]
    [TestCase("BF16")]
    [TestCase("F64")]
    public void ReadAsFloat32_ConvertsFloatingPointDTypes(string dtypeName)
    {
        Assert.That(SafeTensorDTypes.TryParse(dtypeName, out var dtype));
        // 1000 + a few: exercises the vector loop and the scalar tail.
        var values = RandomFloats(1003, seed: (int)dtype);
        float[] special = [0f, -0f, 1f, -2.5f, 65504f, 6.1035156e-05f, 5.9604645e-08f, float.PositiveInfinity, float.NegativeInfinity];
        special.CopyTo(values, 0);
        var path = TempPath($"{dtype}.safetensors");
        SafeTensorsWriter.Write(path, [("w", dtype, [17, 59], SafeTensorsWriter.Encode(dtype, values))]);

        using var file = SafeTensorsFile.Open(path);
        var read = file.ReadAsFloat32("w");
        var expected = dtype switch
        {
            SafeTensorDType.F16 => values.Select(v => (float)(Half)v).ToArray(),
            SafeTensorDType.BF16 => values.Select(v => BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(v) & 0xFFFF0000u)).ToArray(),
            _ => values,
        };
        Assert.That(read, Has.Length.EqualTo(values.Length));
        for (int i = 0; i < values.Length; i++)
            Assert.That(BitConverter.SingleToUInt32Bits(read[i]), Is.EqualTo(BitConverter.SingleToUInt32Bits(expected[i])), $"element {i}: {read[i]} vs {expected[i]}");
    }

    [Test]
    public void ReadAsFloat32_KnownHalfAndBFloat16Values()
    {
        ushort[] f16 = [0x3C00, 0xC000, 0x7BFF, 0x0001, 0x0400, 0x8000, 0x7C00, 0x3555];
        float[] f16Expected = [1f, -2f, 65504f, 5.9604645e-08f, 6.1035156e-05f, -0f, float.PositiveInfinity, 0.33325195f];
        ushort[] bf16 = [0x3F80, 0xC020, 0x7F7F, 0x0001, 0x3EAB, 0xFF80];
        float[] bf16Expected = [1f, -2.5f, 3.3895314e38f, 9.18355e-41f, 0.333984375f, float.NegativeInfinity];
        var path = TempPath("known.safetensors");
        SafeTensorsWriter.Write(path,
        [
            ("f16", SafeTensorDType.F16, [f16.Length], SafeTensorsWriter.Bytes(f16)),
            ("bf16", SafeTensorDType.BF16, [bf16.Length], SafeTensorsWriter.Bytes(bf16)),
        ]);
        using var file = SafeTensorsFile.Open(path);
        Assert.That(file.ReadAsFloat32("f16"), Is.EqualTo(f16Expected));
        Assert.That(file.ReadAsFloat32("bf16"), Is.EqualTo(bf16Expected));
    }

    [Test]
    public void ReadAsFloat32_EveryHalfBitPattern_MatchesSystemHalf()
    {
        var bits = Enumerable.Range(0, 65536).Select(i => (ushort)i).ToArray();
        var path = TempPath("allhalf.safetensors");
        SafeTensorsWriter.Write(path,
        [
            ("f16", SafeTensorDType.F16, [256, 256], SafeTensorsWriter.Bytes(bits)),
            ("bf16", SafeTensorDType.BF16, [65536], SafeTensorsWriter.Bytes(bits)),
        ]);
        using var file = SafeTensorsFile.Open(path);
        var f16 = file.ReadAsFloat32("f16");
        var bf16 = file.ReadAsFloat32("bf16");
        int mismatches = 0;
        for (int i = 0; i < 65536; i++)
        {
            var expected = (float)BitConverter.UInt16BitsToHalf(bits[i]);
            bool ok = float.IsNaN(expected)
                ? float.IsNaN(f16[i])
                : BitConverter.SingleToUInt32Bits(f16[i]) == BitConverter.SingleToUInt32Bits(expected);
            if (!ok && mismatches++ < 5) TestContext.Out.WriteLine($"F16 0x{i:X4}: {f16[i]} vs {expected}");
            var bfExpected = BitConverter.UInt32BitsToSingle((uint)i << 16);
            if (BitConverter.SingleToUInt32Bits(bf16[i]) != BitConverter.SingleToUInt32Bits(bfExpected) && mismatches++ < 5)
                TestContext.Out.WriteLine($"BF16 0x{i:X4}: {bf16[i]} vs {bfExpected}");
        }
        Assert.That(mismatches, Is.Zero);
    }

    [Test]
    public void Convert_UnalignedAndOddLengths_MatchScalar()
    {
        var rng = new Random(7);
        for (int n = 0; n < 80; n++)
        {
            var bits = new ushort[n + 1];
            for (int i = 0; i < bits.Length; i++) bits[i] = (ushort)rng.Next(65536);
            var src = bits.AsSpan(1); // odd start
            var f16 = new float[n];
            var bf16 = new float[n];
            SafeTensorConvert.F16ToF32(src, f16);
            SafeTensorConvert.BF16ToF32(src, bf16);
            var doubles = Enumerable.Range(0, n).Select(_ => (rng.NextDouble() - 0.5) * 1e6).ToArray();
            var f64 = new float[n];
            SafeTensorConvert.F64ToF32(doubles, f64);
            for (int i = 0; i < n; i++)
            {
                var h = (float)BitConverter.UInt16BitsToHalf(src[i]);
                Assert.That(float.IsNaN(h) ? float.IsNaN(f16[i]) : f16[i].Equals(h) && float.IsNegative(f16[i]) == float.IsNegative(h), $"n={n} i={i}");
                Assert.That(bf16[i], Is.EqualTo(BitConverter.UInt32BitsToSingle((uint)src[i] << 16)).Or.NaN);
                Assert.That(f64[i], Is.EqualTo((float)doubles[i]));
            }
        }
    }

    [Test]
    public void GetPointer_AfterDispose_Throws_AndForeignInfoIsRejected()
    {
        var path = TempPath("a.safetensors");
        SafeTensorsWriter.WriteF32(path, new Dictionary<string, (long[], float[])> { ["x"] = ([2], [1f, 2f]) });
        var file = SafeTensorsFile.Open(path);
        var info = file.Tensors["x"];
        Assert.Throws<ArgumentException>(() => file.GetBytes(info with { FilePath = "/elsewhere.safetensors" }));
        Assert.Throws<ArgumentException>(() => file.GetBytes(info with { ByteLength = 1 << 20 }));
        var missing = Assert.Throws<ModelLoadException>(() => file.ReadAsFloat32("nope"))!;
        Assert.That(missing.TensorName, Is.EqualTo("nope"));
        Assert.That(missing.Message, Does.Contain(path));
        file.Dispose();
        file.Dispose(); // idempotent
        Assert.Throws<ObjectDisposedException>(() => file.GetBytes(info));
        Assert.Throws<ObjectDisposedException>(() => file.ReadAsFloat32("x"));
    }

    // ---------------------------------------------------------------- the real Python-written file

    [Test]
    public void PythonWrittenBertFixture_ReadsNamesShapesAndValues()
    {
        var path = TestPaths.Fixture("goldens", "bert", "model.safetensors");
        using var file = SafeTensorsFile.Open(path);
        Assert.That(file.Tensors, Has.Count.EqualTo(39));
        Assert.That(file.Metadata["format"], Is.EqualTo("pt"));
        var word = file.Tensors["embeddings.word_embeddings.weight"];
        Assert.That(word.DType, Is.EqualTo(SafeTensorDType.F32));
        Assert.That(word.Shape, Is.EqualTo(new long[] { 1000, 64 }));
        Assert.That(word.ByteLength, Is.EqualTo(1000L * 64 * 4));
        Assert.That(file.Tensors["encoder.layer.1.intermediate.dense.weight"].Shape, Is.EqualTo(new long[] { 128, 64 }));
        Assert.That(file.Tensors["encoder.layer.0.output.dense.weight"].Shape, Is.EqualTo(new long[] { 64, 128 }));
        Assert.That(file.Tensors["embeddings.token_type_embeddings.weight"].Shape, Is.EqualTo(new long[] { 2, 64 }));
        Assert.That(file.Tensors["pooler.dense.bias"].Shape, Is.EqualTo(new long[] { 64 }));
        Assert.That(file.Tensors.Keys, Has.Exactly(2).Matches<string>(k => k.StartsWith("encoder.layer.") && k.EndsWith(".attention.self.query.weight")));

        // values read with Python's struct module from the same file
        var w = file.ReadAsFloat32("embeddings.word_embeddings.weight");
        Assert.That(w, Has.Length.EqualTo(64000));
        Assert.That(w[0], Is.EqualTo(-0.005585928447544575f));
        Assert.That(w[1], Is.EqualTo(-0.024829505011439323f));
        Assert.That(w[64 * 999 + 63], Is.EqualTo(-0.002288875635713339f));
        Assert.That(file.ReadAsFloat32("embeddings.LayerNorm.weight")[..2], Is.EqualTo(new[] { 1.011130690574646f, 0.9781875610351562f }));
        var bias = file.ReadAsFloat32("pooler.dense.bias");
        Assert.That(bias[0], Is.EqualTo(-0.0011450283927842975f));
        Assert.That(bias[63], Is.EqualTo(-0.024273131042718887f));
    }

    // ---------------------------------------------------------------- corrupt files

    [TestCase(0)]
    [TestCase(5)]
    [TestCase(7)]
    public void Corrupt_ShorterThanEightBytes(int length)
    {
        var path = TempPath("short.safetensors");
        File.WriteAllBytes(path, new byte[length]);
        Assert.That(AssertOpenFails(path).Message, Does.Contain("8"));
    }

    [Test]
    public void Corrupt_MissingFile()
    {
        var path = TempPath("nothere.safetensors");
        Assert.That(AssertOpenFails(path).Message, Does.Contain("not found"));
    }

    [Test]
    public void Corrupt_HeaderLengthBeyondFile()
    {
        var path = TempPath("long.safetensors");
        SafeTensorsWriter.WriteRaw(path, "{}", declaredHeaderLength: 1000);
        Assert.That(AssertOpenFails(path).Message, Does.Contain("1000"));
    }

    [TestCase(ulong.MaxValue)]
    [TestCase(1UL << 63)]
    [TestCase(100_000_001UL)]
    public void Corrupt_HugeHeaderLength_IsRejectedWithoutAllocating(ulong declared)
    {
        var path = TempPath("huge.safetensors");
        SafeTensorsWriter.WriteRaw(path, "{}", declaredHeaderLength: declared);
        AssertOpenFails(path);
    }

    [TestCase("{\"a\": {\"dtype\": \"F32\", ")]
    [TestCase("{\"a\": 1,}")]
    [TestCase("not json")]
    [TestCase("")]
    [TestCase("{} {}")]
    public void Corrupt_InvalidJson(string header)
    {
        var path = TempPath("badjson.safetensors");
        SafeTensorsWriter.WriteRaw(path, header);
        Assert.That(AssertOpenFails(path).Message, Does.Contain("JSON"));
    }

    [Test]
    public void Corrupt_InvalidUtf8InHeader()
    {
        var path = TempPath("utf8.safetensors");
        byte[] header = [(byte)'{', (byte)'"', 0xFF, 0xFE, (byte)'"', (byte)':', (byte)'1', (byte)'}'];
        var bytes = new byte[8 + header.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        File.WriteAllBytes(path, bytes);
        AssertOpenFails(path);
    }

    [TestCase("[1, 2]")]
    [TestCase("\"text\"")]
    [TestCase("42")]
    [TestCase("null")]
    public void Corrupt_NonObjectJson(string header)
    {
        var path = TempPath("array.safetensors");
        SafeTensorsWriter.WriteRaw(path, header);
        Assert.That(AssertOpenFails(path).Message, Does.Contain("object"));
    }

    [TestCase("F8_E4M3")]
    [TestCase("f32")]
    [TestCase("1")]
    [TestCase("Q4_0")]
    public void Corrupt_UnknownDType(string dtype)
    {
        var path = TempPath("dtype.safetensors");
        SafeTensorsWriter.WriteRaw(path, $$$"""{"t": {"dtype": "{{{dtype}}}", "shape": [2], "data_offsets": [0, 2]}}""", new byte[2]);
        Assert.That(AssertOpenFails(path, "t").Message, Does.Contain(dtype));
    }

    [Test]
    public void Corrupt_NegativeShape()
    {
        var path = TempPath("neg.safetensors");
        SafeTensorsWriter.WriteRaw(path, """{"t": {"dtype": "F32", "shape": [-1, 4], "data_offsets": [0, 16]}}""", new byte[16]);
        Assert.That(AssertOpenFails(path, "t").Message, Does.Contain("negative"));
    }

    [TestCase("[2.5]")]
    [TestCase("[\"2\"]")]
    [TestCase("2")]
    [TestCase("[1e400]")]
    [TestCase("[99999999999999999999]")]
    public void Corrupt_ShapeNotIntegers(string shape)
    {
        var path = TempPath("shape.safetensors");
        SafeTensorsWriter.WriteRaw(path, $$$"""{"t": {"dtype": "F32", "shape": {{{shape}}}, "data_offsets": [0, 8]}}""", new byte[8]);
        AssertOpenFails(path, "t");
    }

    [Test]
    public void Corrupt_ShapeProductOverflows()
    {
        var path = TempPath("overflow.safetensors");
        SafeTensorsWriter.WriteRaw(path,
            """{"t": {"dtype": "F64", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 0]}}""");
        AssertOpenFails(path, "t");
        SafeTensorsWriter.WriteRaw(path,
            """{"t": {"dtype": "F64", "shape": [2305843009213693952], "data_offsets": [0, 0]}}""");
        AssertOpenFails(path, "t");
    }

    [Test]
    public void Corrupt_OffsetsBeyondData()
    {
        var path = TempPath("beyond.safetensors");
        SafeTensorsWriter.WriteRaw(path, """{"t": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}""", new byte[12]);
        Assert.That(AssertOpenFails(path, "t").Message, Does.Contain("beyond"));
    }

    [Test]
    public void Corrupt_HugeOffsets()
    {
        var path = TempPath("hugeoff.safetensors");
        SafeTensorsWriter.WriteRaw(path,
            """{"t": {"dtype": "F32", "shape": [1], "data_offsets": [9223372036854775803, 9223372036854775807]}}""", new byte[4]);
        AssertOpenFails(path, "t");
        SafeTensorsWriter.WriteRaw(path,
            """{"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 18446744073709551615]}}""", new byte[4]);
        AssertOpenFails(path, "t");
    }

    [Test]
    public void Corrupt_BeginAfterEnd()
    {
        var path = TempPath("order.safetensors");
        SafeTensorsWriter.WriteRaw(path, """{"t": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}}""", new byte[8]);
        Assert.That(AssertOpenFails(path, "t").Message, Does.Contain("begin"));
    }

    [TestCase("[0]")]
    [TestCase("[0, 4, 8]")]
    [TestCase("[-4, 0]")]
    [TestCase("{\"begin\": 0}")]
    public void Corrupt_MalformedOffsets(string offsets)
    {
        var path = TempPath("offsets.safetensors");
        SafeTensorsWriter.WriteRaw(path, $$$"""{"t": {"dtype": "F32", "shape": [1], "data_offsets": {{{offsets}}}}}""", new byte[8]);
        AssertOpenFails(path, "t");
    }

    [Test]
    public void Corrupt_ByteCountDisagreesWithShape()
    {
        var path = TempPath("count.safetensors");
        SafeTensorsWriter.WriteRaw(path, """{"t": {"dtype": "F16", "shape": [2, 3], "data_offsets": [0, 24]}}""", new byte[24]);
        Assert.That(AssertOpenFails(path, "t").Message, Does.Contain("12").And.Contain("24"));
    }

    [Test]
    public void Corrupt_OverlappingTensors()
    {
        var path = TempPath("overlap.safetensors");
        SafeTensorsWriter.WriteRaw(path,
            """{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]}}""",
            new byte[20]);
        var ex = AssertOpenFails(path, "b");
        Assert.That(ex.Message, Does.Contain("overlap").And.Contain("'a'"));

        // the same range twice, in reverse header order
        SafeTensorsWriter.WriteRaw(path,
            """{"b": {"dtype": "I32", "shape": [2], "data_offsets": [8, 16]}, "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}""",
            new byte[16]);
        AssertOpenFails(path, "b");
    }

    [Test]
    public void EmptyTensors_AreAllowedWhereThePreviousOneEnds()
    {
        var path = TempPath("empty.safetensors");
        SafeTensorsWriter.WriteRaw(path,
            """{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "e": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}, "b": {"dtype": "U8", "shape": [2], "data_offsets": [4, 6]}}""",
            [0, 0, 0x80, 0x3F, 1, 2]);
        using var file = SafeTensorsFile.Open(path);
        Assert.That(file.ReadAsFloat32("a"), Is.EqualTo(new[] { 1f }));
        Assert.That(file.GetBytes(file.Tensors["b"]).ToArray(), Is.EqualTo(new byte[] { 1, 2 }));
        Assert.That(file.ReadAsFloat32("e"), Is.Empty);
    }

    /// <summary>The reference reader's rule: the ranges tile the data buffer from 0 to its end.</summary>
    [TestCase("""{"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}""", 8, "a", "gap")]
    [TestCase("""{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": {"dtype": "U8", "shape": [2], "data_offsets": [6, 8]}}""", 8, "b", "gap")]
    [TestCase("""{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}""", 6, null, "trailing bytes")]
    public void Corrupt_GapsAndTrailingBytes(string header, int dataLength, string? tensor, string words)
    {
        var path = TempPath("gaps.safetensors");
        SafeTensorsWriter.WriteRaw(path, header, new byte[dataLength]);
        var ex = AssertOpenFails(path, tensor);
        Assert.That(ex.Message, Does.Contain(words));
    }

    /// <summary>A header length prefix shrunk by 1–4 bytes eats the padding and shifts every tensor: refused.</summary>
    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    [TestCase(4)]
    public void Corrupt_ShrunkHeaderLength(int by)
    {
        var path = TempPath("shrunk.safetensors");
        SafeTensorsWriter.Write(path, [("a", SafeTensorDType.F32, [2, 3], SafeTensorsWriter.Encode(SafeTensorDType.F32, RandomFloats(6, 1)))], null);
        var bytes = File.ReadAllBytes(path);
        var n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        var headerText = System.Text.Encoding.UTF8.GetString(bytes, 8, (int)n);
        Assume.That(headerText.Length - headerText.TrimEnd().Length, Is.GreaterThanOrEqualTo(by), "the writer pads the header");
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, n - (ulong)by);
        File.WriteAllBytes(path, bytes);
        AssertOpenFails(path, null);
    }

    [Test]
    public void NotARegularFile_IsRefusedWithoutBlocking()
    {
        var dir = TempPath("adir.safetensors");
        Directory.CreateDirectory(dir);
        AssertOpenFails(dir, null);
        if (!OperatingSystem.IsLinux()) return;
        var fifo = TempPath("fifo.safetensors");
        using (var p = System.Diagnostics.Process.Start("mkfifo", fifo)) p.WaitForExit();
        var open = Task.Run(() => AssertOpenFails(fifo, null));
        Assert.That(open.Wait(TimeSpan.FromSeconds(10)), Is.True, "opening a FIFO must not block");
    }

    [TestCase("""{"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "t": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}""", "t")]
    [TestCase("""{"t": 5}""", "t")]
    [TestCase("""{"t": {"shape": [1], "data_offsets": [0, 4]}}""", "t")]
    [TestCase("""{"t": {"dtype": "F32", "data_offsets": [0, 4]}}""", "t")]
    [TestCase("""{"t": {"dtype": "F32", "shape": [1]}}""", "t")]
    [TestCase("""{"t": {"dtype": 3, "shape": [1], "data_offsets": [0, 4]}}""", "t")]
    [TestCase("""{"__metadata__": {"k": 1}}""", null)]
    [TestCase("""{"__metadata__": [1]}""", null)]
    [TestCase("""{"__metadata__": {}, "__metadata__": {}}""", null)]
    public void Corrupt_OtherMalformedEntries(string header, string? tensor)
    {
        var path = TempPath("entries.safetensors");
        SafeTensorsWriter.WriteRaw(path, header, new byte[8]);
        AssertOpenFails(path, tensor);
    }

    [Test]
    public void Corrupt_RandomMutationsAndTruncations_OnlyEverThrowModelLoadException()
    {
        var good = TempPath("good.safetensors");
        SafeTensorsWriter.Write(good,
        [
            ("a", SafeTensorDType.F32, [2, 3], SafeTensorsWriter.Encode(SafeTensorDType.F32, RandomFloats(6, 1))),
            ("b", SafeTensorDType.BF16, [4], SafeTensorsWriter.Encode(SafeTensorDType.BF16, RandomFloats(4, 2))),
            ("c", SafeTensorDType.I64, [3], SafeTensorsWriter.Bytes(new long[] { 1, 2, 3 })),
        ], new Dictionary<string, string> { ["format"] = "pt" });
        var bytes = File.ReadAllBytes(good);
        var path = TempPath("mutant.safetensors");
        var rng = new Random(12345);
        int opened = 0, rejected = 0;

        var original = new Dictionary<string, byte[]>();
        using (var reference = SafeTensorsFile.Open(good))
            foreach (var info in reference.Tensors.Values) original[info.Name] = reference.GetBytes(info).ToArray();
        int sameTensors = 0, relabelled = 0;

        // Opened: the data must not have moved (each tensor's bytes are some original tensor's bytes, in the same places);
        // only the header's description (a name, a dtype of the same width, a shape of the same size) can differ, which the
        // model's own checks (names, shapes, float dtypes) catch. Otherwise: a ModelLoadException naming the file.
        void Check(byte[] content)
        {
            File.WriteAllBytes(path, content);
            try
            {
                using var file = SafeTensorsFile.Open(path);
                var same = file.Tensors.Count == original.Count;
                foreach (var info in file.Tensors.Values)
                {
                    var data = file.GetBytes(info).ToArray();
                    Assert.That(original.Values.Any(o => o.AsSpan().SequenceEqual(data)), Is.True, $"tensor '{info.Name}' reads bytes no original tensor has");
                    if (info.DType.IsFloatingPoint()) _ = file.ReadAsFloat32(info.Name);
                    same &= original.TryGetValue(info.Name, out var o2) && o2.AsSpan().SequenceEqual(data);
                }
                opened++;
                if (same) sameTensors++; else relabelled++;
            }
            catch (ModelLoadException e)
            {
                Assert.That(e.Message, Does.Contain(path));
                rejected++;
            }
        }

        var sw = System.Diagnostics.Stopwatch.StartNew();
        for (int length = 0; length < bytes.Length; length++) Check(bytes[..length]);
        var headerEnd = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        for (int i = 0; i < 3000; i++)
        {
            var copy = (byte[])bytes.Clone();
            int flips = rng.Next(1, 4);
            for (int f = 0; f < flips; f++)
            {
                int at = rng.Next(headerEnd);
                copy[at] = rng.Next(3) switch
                {
                    0 => (byte)rng.Next(256),
                    1 => (byte)"0123456789-[]{},:\" .eE"[rng.Next(22)],
                    _ => (byte)(copy[at] ^ (1 << rng.Next(8))),
                };
            }
            // Sometimes shift the header length prefix by a few bytes too.
            if (rng.Next(4) == 0)
                BinaryPrimitives.WriteUInt64LittleEndian(copy, (ulong)(headerEnd - 8 + rng.Next(-6, 7)));
            Check(copy);
        }
        TestContext.Out.WriteLine($"{bytes.Length} truncations + 3000 mutations in {sw.ElapsedMilliseconds} ms: opened {opened} " +
                                  $"({sameTensors} with the original tensors, {relabelled} with the same bytes described otherwise), rejected {rejected}");
        Assert.That(rejected, Is.GreaterThan(bytes.Length - 1));
    }

    // ---------------------------------------------------------------- checkpoints

    private static void WriteShard(string path, params (string Name, float[] Data)[] tensors) =>
        SafeTensorsWriter.WriteF32(path, tensors.ToDictionary(t => t.Name, t => (new long[] { t.Data.Length }, t.Data)));

    private static void WriteIndex(string folder, params (string Tensor, string Shard)[] map)
    {
        var entries = string.Join(", ", map.Select(m => $"\"{m.Tensor}\": \"{m.Shard}\""));
        File.WriteAllText(Path.Combine(folder, WeightSet.IndexFileName),
            $$$"""{"metadata": {"total_size": 40}, "weight_map": { {{{entries}}} }}""");
    }

    private const string Shard1 = "model-00001-of-00002.safetensors";
    private const string Shard2 = "model-00002-of-00002.safetensors";

    [Test]
    public void Checkpoint_SingleFile_PlusHeadFileUnderPrefix()
    {
        WriteShard(TempPath("model.safetensors"), ("embeddings.weight", [1f, 2f, 3f]), ("pooler.bias", [4f]));
        Directory.CreateDirectory(TempPath("1_Dense"));
        WriteShard(TempPath("1_Dense/model.safetensors"), ("linear.weight", [5f, 6f]));
        WriteShard(TempPath("golden.safetensors"), ("ignored", [0f]));

        using var set = WeightSet.OpenCheckpoint(_dir);
        Assert.That(set.Names, Is.EquivalentTo(new[] { "embeddings.weight", "pooler.bias" }));
        set.AddFile(TempPath("1_Dense/model.safetensors"), "1_Dense.");
        Assert.That(set.Names, Has.Count.EqualTo(3));
        Assert.That(set.Contains("1_Dense.linear.weight"));
        Assert.That(set.Contains("ignored"), Is.False);
        Assert.That(set.ReadAsFloat32("1_Dense.linear.weight"), Is.EqualTo(new[] { 5f, 6f }));
        Assert.That(set.Get("1_Dense.linear.weight").Name, Is.EqualTo("linear.weight"));
        Assert.That(set.FileOf("1_Dense.linear.weight").FilePath, Is.EqualTo(TempPath("1_Dense/model.safetensors")));
        Assert.That(set.Get("embeddings.weight").Shape, Is.EqualTo(new long[] { 3 }));
        Assert.That(set.ReadAsFloat32("embeddings.weight"), Is.EqualTo(new[] { 1f, 2f, 3f }));

        var missing = Assert.Throws<ModelLoadException>(() => set.Get("encoder.weight"))!;
        Assert.That(missing.TensorName, Is.EqualTo("encoder.weight"));
        Assert.That(missing.Message, Does.Contain("encoder.weight"));
        Assert.Throws<ModelLoadException>(() => set.FileOf("encoder.weight"));
        Assert.Throws<ModelLoadException>(() => set.ReadAsFloat32("encoder.weight"));

        // the same keys again collide
        var dup = Assert.Throws<ModelLoadException>(() => set.AddFile(TempPath("1_Dense/model.safetensors"), "1_Dense."))!;
        Assert.That(dup.TensorName, Is.EqualTo("1_Dense.linear.weight"));
        Assert.That(set.Names, Has.Count.EqualTo(3), "a failed AddFile adds nothing");
    }

    [Test]
    public void Checkpoint_TwoShards_HappyPath_IndexWinsOverModelSafetensors()
    {
        WriteShard(TempPath(Shard1), ("a", [1f, 2f]), ("b", [3f]));
        WriteShard(TempPath(Shard2), ("c", [4f, 5f, 6f]));
        WriteIndex(_dir, ("a", Shard1), ("b", Shard1), ("c", Shard2));
        WriteShard(TempPath("model.safetensors"), ("stale", [0f]));
        WriteShard(TempPath("other.safetensors"), ("other", [0f]));

        using var set = WeightSet.OpenCheckpoint(_dir);
        Assert.That(set.Names, Is.EquivalentTo(new[] { "a", "b", "c" }));
        Assert.That(set.Files, Has.Count.EqualTo(2), "each shard opened once");
        Assert.That(set.FileOf("a"), Is.SameAs(set.FileOf("b")));
        Assert.That(set.FileOf("c").FilePath, Is.EqualTo(TempPath(Shard2)));
        Assert.That(set.Get("c").FilePath, Is.EqualTo(TempPath(Shard2)));
        Assert.That(set.ReadAsFloat32("a"), Is.EqualTo(new[] { 1f, 2f }));
        Assert.That(set.ReadAsFloat32("c"), Is.EqualTo(new[] { 4f, 5f, 6f }));
        Assert.That(set.Contains("stale"), Is.False);
    }

    [Test]
    public void Checkpoint_MissingShardFile()
    {
        WriteShard(TempPath(Shard1), ("a", [1f]));
        WriteIndex(_dir, ("a", Shard1), ("c", Shard2));
        var ex = Assert.Throws<ModelLoadException>(() => WeightSet.OpenCheckpoint(_dir).Dispose())!;
        Assert.That(ex.Message, Does.Contain(Shard2).And.Contain("not found"));
        Assert.That(ex.FilePath, Is.EqualTo(TempPath(Shard2)));
    }

    [Test]
    public void Checkpoint_TensorMissingFromItsShard()
    {
        WriteShard(TempPath(Shard1), ("a", [1f]));
        WriteShard(TempPath(Shard2), ("c", [1f]));
        WriteIndex(_dir, ("a", Shard1), ("b", Shard1), ("c", Shard2));
        var ex = Assert.Throws<ModelLoadException>(() => WeightSet.OpenCheckpoint(_dir).Dispose())!;
        Assert.That(ex.TensorName, Is.EqualTo("b"));
        Assert.That(ex.Message, Does.Contain("'b'").And.Contain(Shard1));
    }

    [Test]
    public void Checkpoint_DuplicateTensorAcrossShards()
    {
        WriteShard(TempPath(Shard1), ("a", [1f]), ("b", [2f]));
        WriteShard(TempPath(Shard2), ("b", [3f]), ("c", [4f]));
        WriteIndex(_dir, ("a", Shard1), ("b", Shard1), ("c", Shard2));
        var ex = Assert.Throws<ModelLoadException>(() => WeightSet.OpenCheckpoint(_dir).Dispose())!;
        Assert.That(ex.TensorName, Is.EqualTo("b"));
        Assert.That(ex.Message, Does.Contain("'b'").And.Contain(Shard1).And.Contain(Shard2));
    }

    [Test]
    public void Checkpoint_DuplicateTensorInWeightMap()
    {
        WriteShard(TempPath(Shard1), ("a", [1f]));
        WriteShard(TempPath(Shard2), ("c", [1f]));
        WriteIndex(_dir, ("a", Shard1), ("a", Shard2), ("c", Shard2));
        var ex = Assert.Throws<ModelLoadException>(() => WeightSet.OpenCheckpoint(_dir).Dispose())!;
        Assert.That(ex.TensorName, Is.EqualTo("a"));
        Assert.That(ex.Message, Does.Contain(WeightSet.IndexFileName));
    }

    [Test]
    public void Checkpoint_TensorInShardButNotInIndex()
    {
        WriteShard(TempPath(Shard1), ("a", [1f]), ("extra", [2f]));
        WriteShard(TempPath(Shard2), ("c", [1f]));
        WriteIndex(_dir, ("a", Shard1), ("c", Shard2));
        var ex = Assert.Throws<ModelLoadException>(() => WeightSet.OpenCheckpoint(_dir).Dispose())!;
        Assert.That(ex.TensorName, Is.EqualTo("extra"));
        Assert.That(ex.Message, Does.Contain(Shard1));
    }

    [Test]
    public void Checkpoint_CorruptShard_NamesTheShard()
    {
        WriteShard(TempPath(Shard1), ("a", [1f]));
        File.WriteAllBytes(TempPath(Shard2), [1, 2, 3]);
        WriteIndex(_dir, ("a", Shard1), ("c", Shard2));
        var ex = Assert.Throws<ModelLoadException>(() => WeightSet.OpenCheckpoint(_dir).Dispose())!;
        Assert.That(ex.FilePath, Is.EqualTo(TempPath(Shard2)));
        Assert.That(ex.Message, Does.Contain(Shard2));
    }

    [TestCase("not json")]
    [TestCase("[]")]
    [TestCase("""{"metadata": {}}""")]
    [TestCase("""{"weight_map": []}""")]
    [TestCase("""{"weight_map": {}}""")]
    [TestCase("""{"weight_map": {"a": 3}}""")]
    [TestCase("""{"weight_map": {"a": "../outside.safetensors"}}""")]
    [TestCase("""{"weight_map": {"a": "/etc/passwd"}}""")]
    public void Checkpoint_MalformedIndex(string index)
    {
        WriteShard(TempPath(Shard1), ("a", [1f]));
        File.WriteAllText(TempPath(WeightSet.IndexFileName), index);
        var ex = Assert.Throws<ModelLoadException>(() => WeightSet.OpenCheckpoint(_dir).Dispose())!;
        Assert.That(ex.Message, Does.Contain(TempPath(WeightSet.IndexFileName)));
    }

    [Test]
    public void Checkpoint_FolderWithoutWeights()
    {
        WriteShard(TempPath("golden.safetensors"), ("a", [1f]));
        File.WriteAllText(TempPath("config.json"), "{}");
        var ex = Assert.Throws<ModelLoadException>(() => WeightSet.OpenCheckpoint(_dir).Dispose())!;
        Assert.That(ex.Message, Does.Contain(_dir).And.Contain("model.safetensors").And.Contain(WeightSet.IndexFileName));
        Assert.That(ex.FilePath, Is.EqualTo(_dir));
    }

    [Test]
    public void Checkpoint_MissingFolder()
    {
        var folder = TempPath("no-such-model");
        var ex = Assert.Throws<ModelLoadException>(() => WeightSet.OpenCheckpoint(folder).Dispose())!;
        Assert.That(ex.Message, Does.Contain(folder));
    }

    [Test]
    public void Checkpoint_PythonWrittenBertFixtureFolder()
    {
        using var set = WeightSet.OpenCheckpoint(TestPaths.Fixture("goldens", "bert"));
        Assert.That(set.Names, Has.Count.EqualTo(39), "golden*.safetensors beside model.safetensors are ignored");
        Assert.That(set.Get("embeddings.word_embeddings.weight").Shape, Is.EqualTo(new long[] { 1000, 64 }));
    }
}
