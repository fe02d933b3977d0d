using System.Text.Json;

namespace TokenEmbed.Tokenization;

/// <summary>
/// Hugging Face <c>TemplateProcessing</c> (and the fixed templates of <c>BertProcessing</c>/<c>RobertaProcessing</c>):
/// the single-sequence template, a list of special-token id runs and <c>$A</c>.
/// </summary>
internal sealed class TemplatePostProcessor : PostProcessor
{
    private readonly int[]?[] _pieces;   // ids of a special token, or null for the sequence

    /// <param name="pieces">The template: special token ids, or null where the sequence goes.</param>
    public TemplatePostProcessor(int[]?[] pieces)
    {
        _pieces = pieces;
        NumSpecialTokensToAdd = pieces.Sum(p => p?.Length ?? 0);
    }

    public override int NumSpecialTokensToAdd { get; }

    public override int[] Apply(ReadOnlySpan<int> ids)
    {
        int sequences = _pieces.Count(p => p is null);
        var result = new int[NumSpecialTokensToAdd + sequences * ids.Length];
        int n = 0;
        foreach (var piece in _pieces)
        {
            ReadOnlySpan<int> part = piece ?? ids;
            part.CopyTo(result.AsSpan(n));
            n += part.Length;
        }
        return result;
    }

    /// <summary>Reads <c>single</c> and <c>special_tokens</c> of a <c>TemplateProcessing</c> object.</summary>
    public static TemplatePostProcessor FromTemplateJson(JsonComponent json)
    {
        var specialIds = new Dictionary<string, int[]>(StringComparer.Ordinal);
        var specials = json.Get("special_tokens", JsonValueKind.Object);
        if (specials is not null)
        {
            foreach (var p in specials.Value.EnumerateObject())
            {
                var entry = new JsonComponent(p.Value, json.FilePath, $"{json.Path}.special_tokens.{p.Name}");
                if (p.Value.ValueKind != JsonValueKind.Object) throw entry.Invalid($"{entry.Path} must be an object");
                var idsJson = entry.Get("ids", JsonValueKind.Array) ?? throw entry.Invalid($"{entry.Path}.ids is missing");
                var ids = new List<int>();
                foreach (var id in idsJson.EnumerateArray())
                {
                    if (id.ValueKind != JsonValueKind.Number || !id.TryGetInt32(out int v)) throw entry.Invalid($"{entry.Path}.ids must hold integers");
                    ids.Add(v);
                }
                specialIds[entry.GetString("id") ?? p.Name] = ids.ToArray();
            }
        }

        var single = json.Get("single", JsonValueKind.Array) ?? throw json.Invalid($"{json.Path}.single is missing");
        var pieces = new List<int[]?>();
        int i = 0;
        foreach (var item in single.EnumerateArray())
        {
            string where = $"{json.Path}.single[{i++}]";
            // {"SpecialToken": {"id": "[CLS]", "type_id": 0}} or {"Sequence": {"id": "A", "type_id": 0}}; also the
            // string shorthand "[CLS]" / "[CLS]:0" / "$A" / "$A:0".
            if (item.ValueKind == JsonValueKind.String)
            {
                string s = item.GetString()!;
                int colon = s.LastIndexOf(':');
                if (colon > 0 && int.TryParse(s.AsSpan(colon + 1), out _)) s = s[..colon];
                if (s.StartsWith('$')) pieces.Add(null);
                else pieces.Add(specialIds.TryGetValue(s, out var sid) ? sid : throw json.Invalid($"{where}: special token \"{s}\" is not in special_tokens"));
                continue;
            }
            if (item.ValueKind == JsonValueKind.Object && item.TryGetProperty("Sequence", out _))
            {
                pieces.Add(null);
            }
            else if (item.ValueKind == JsonValueKind.Object && item.TryGetProperty("SpecialToken", out var st)
                     && st.ValueKind == JsonValueKind.Object && st.TryGetProperty("id", out var stId) && stId.ValueKind == JsonValueKind.String)
            {
                string name = stId.GetString()!;
                pieces.Add(specialIds.TryGetValue(name, out var sid) ? sid : throw json.Invalid($"{where}: special token \"{name}\" is not in special_tokens"));
            }
            else
            {
                throw json.Invalid($"{where} must be a SpecialToken or Sequence piece");
            }
        }
        return new TemplatePostProcessor(pieces.ToArray());
    }
}
