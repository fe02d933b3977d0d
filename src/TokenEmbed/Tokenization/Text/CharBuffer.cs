using System.Buffers;
using System.Runtime.CompilerServices;

namespace TokenEmbed.Tokenization;

/// <summary>
/// A growable char buffer rented from <see cref="ArrayPool{T}"/>; pass it by reference and dispose it
/// (disposing a <c>default</c> instance is a no-op).
/// </summary>
internal struct CharBuffer : IDisposable
{
    private char[] _chars;
    private int _length;

    public CharBuffer(int capacity)
    {
        _chars = ArrayPool<char>.Shared.Rent(Math.Max(capacity, 16));
        _length = 0;
    }

    public readonly int Length => _length;

    public readonly ReadOnlySpan<char> Span => _chars.AsSpan(0, _length);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Append(char c)
    {
        if (_length == _chars.Length) Grow(1);
        _chars[_length++] = c;
    }

    public void Append(ReadOnlySpan<char> text)
    {
        if (_length + text.Length > _chars.Length) Grow(text.Length);
        text.CopyTo(_chars.AsSpan(_length));
        _length += text.Length;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void AppendCodePoint(int cp)
    {
        if (cp <= 0xFFFF)
        {
            Append((char)cp);
        }
        else
        {
            if (_length + 2 > _chars.Length) Grow(2);
            cp -= 0x10000;
            _chars[_length++] = (char)(0xD800 + (cp >> 10));
            _chars[_length++] = (char)(0xDC00 + (cp & 0x3FF));
        }
    }

    /// <summary>A writable span of <paramref name="count"/> chars at the end; <see cref="Advance"/> commits what was written.</summary>
    public Span<char> GetAppendSpan(int count)
    {
        if (_length + count > _chars.Length) Grow(count);
        return _chars.AsSpan(_length, count);
    }

    public void Advance(int count) => _length += count;

    public override readonly string ToString() => new(_chars, 0, _length);

    public void Dispose()
    {
        char[]? chars = _chars;
        _chars = [];
        _length = 0;
        if (chars is { Length: > 0 }) ArrayPool<char>.Shared.Return(chars);
    }

    private void Grow(int extra)
    {
        char[] bigger = ArrayPool<char>.Shared.Rent(Math.Max(_chars.Length * 2, _length + extra));
        _chars.AsSpan(0, _length).CopyTo(bigger);
        if (_chars.Length > 0) ArrayPool<char>.Shared.Return(_chars);
        _chars = bigger;
    }
}
