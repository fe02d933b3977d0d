import json
cases=json.load(open('cases.json')); out=json.load(open('cases_out.json'))
res=[]
for c,o in zip(cases,out):
    assert c['name']==o['name'] and 'error' not in o
    e={"name":c['name']}
    j=c['json']
    if isinstance(j,str):
        e["fixture"]=j.replace('\\','/').split('/')[-2]
    elif j.get('merges') is None and 'model' in j and len(j['model']['vocab'])>1000:
        e["fixture"]="modernbert"; e["pre_tokenizer"]=j["pre_tokenizer"]
    else:
        e["tokenizer"]=j
    e["cases"]=[{"text":r['text'],"ids":r['ids'],"tokens":r['tokens']} for r in o['results']]
    res.append(e)
doc={"generator":"tests/TokenEmbed.Tests/Fixtures/tokenizers/hf-reference/ (gen.py + ref.mjs): Hugging Face tokenizers (Rust 0.22.2) via @anush008/tokenizers@0.6.0, add_special_tokens false","sets":res}
s=json.dumps(doc,ensure_ascii=False,indent=1)
open('bpe-components.json','w').write(s)
print(len(s), [ (e['name'], e.get('fixture')) for e in res])
