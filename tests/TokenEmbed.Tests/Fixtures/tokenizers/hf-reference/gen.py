import json, random, copy
random.seed(7)
F='../'   # the tokenizers fixture folder; run from hf-reference/
def tok(pre, model, normalizer=None, post=None, added=None):
    return {"version":"1.0","added_tokens":added or [],"normalizer":normalizer,"pre_tokenizer":pre,"post_processor":post,"decoder":None,"model":model}
def bpe(vocab, merges, **kw):
    m={"type":"BPE","dropout":None,"unk_token":None,"continuing_subword_prefix":None,"end_of_word_suffix":None,"fuse_unk":False,"byte_fallback":False,"ignore_merges":False,"vocab":vocab,"merges":merges}
    m.update(kw); return m
cases=[]
M1=bpe({"<unk>":0,"a":1,"b":2,"-":3,"a-":4,"-b":5,"a-b":6,"--":7},["a -","- b","a- b","- -"],unk_token="<unk>")
T1=["a-b","a--b-","-ab--a","ab"]
for beh in ["Removed","Isolated","MergedWithPrevious","MergedWithNext","Contiguous"]:
    for inv in [False,True]:
        cases.append({"name":f"split-string-{beh}-{inv}","json":tok({"type":"Split","pattern":{"String":"-"},"behavior":beh,"invert":inv},M1),"texts":T1})
cases.append({"name":"split-regex-Isolated","json":tok({"type":"Split","pattern":{"Regex":"-+"},"behavior":"Isolated","invert":False},M1),"texts":T1})
WS={"type":"WhitespaceSplit"}
M2=bpe({"<unk>":0,"a":1,"##b":2,"##c</w>":3,"ab":4,"abc</w>":5,"a</w>":6,"##b</w>":7,"b":8,"c</w>":9},["a ##b","ab ##c</w>"],unk_token="<unk>",continuing_subword_prefix="##",end_of_word_suffix="</w>")
cases.append({"name":"prefix-suffix","json":tok(WS,M2),"texts":["abc","ab","a","abb","b c","x","ac"]})
for fuse in [False,True]:
    cases.append({"name":f"unk-fuse-{fuse}","json":tok(WS,bpe({"<unk>":0,"a":1,"b":2,"ab":3},["a b"],unk_token="<unk>",fuse_unk=fuse)),"texts":["axxb","xxab","a\u00e9b","x","a\U0001D518\U0001D518b"]})
cases.append({"name":"no-unk","json":tok(WS,bpe({"a":1,"b":2,"ab":3},["a b"])),"texts":["axxb","xab"]})
cases.append({"name":"byte-fallback","json":tok(WS,bpe({"<unk>":0,"a":1,"<0xC3>":2,"<0xA9>":3,"<0x41>":4,"<0xF0>":5,"<0x9D>":6,"<0x94>":7,"<0x98>":8},[],unk_token="<unk>",byte_fallback=True)),"texts":["a\u00e9","a\u00fc","A","\U0001D518a"]})
for im in [False,True]:
    cases.append({"name":f"ignore-merges-{im}","json":tok(WS,bpe({"a":0,"b":1,"c":2,"bc":3,"abc":4},[["b","c"]],ignore_merges=im)),"texts":["abc","bc","abcabc"]})
cases.append({"name":"merge-order","json":tok(WS,bpe({"a":0,"aa":1,"aaa":2,"b":3,"c":4,"ab":5,"bc":6},["a a","aa a","b c","a b"])),"texts":["aaaa","aaaaa","abc","aabc"]})
mb=json.load(open(F+'modernbert/tokenizer.json'))
for aps,ur in [(True,True),(True,False),(False,False)]:
    j=copy.deepcopy(mb); j["pre_tokenizer"]={"type":"ByteLevel","add_prefix_space":aps,"trim_offsets":True,"use_regex":ur}
    cases.append({"name":f"modernbert-bytelevel-{aps}-{ur}","json":j,"texts":["Hello world"," Hello","a [MASK] b","x  y\n z","caf\u00e9 \U0001D518x"]})
tricky=["\U0001D518\U0001D52Babc","x\U0001D7CE\U0001D7CF2","abc\U0001D518 d","(\U0001D518\U0001D52B)","'\U0001D518","\u03A9'S 'ſ 'K 'LL 'Ll","\U0001D518'S",
        "a\u00a0b\u0085c\u2028d","  \n\n  x \t","\u212A's 'KL","don\u2019t","\U00020000\U00020001abc","1\U000104A0 2","\U0001F600abc"]
cases.append({"name":"qwen3-tricky","json":F+'qwen3/tokenizer.json',"texts":tricky})
cases.append({"name":"modernbert-tricky","json":F+'modernbert/tokenizer.json',"texts":tricky})
json.dump(cases,open('cases.json','w'))
# random texts for ../modernbert and ../qwen3 goldens.fuzz.json (fuzz.mjs encodes them)
pool=list("abcdefgXYZ0123456789 ")+[" "]*6+["\n","\r","\t","'s","'S","'ll","'ſ","\u212A","!","?",".",",","-","_","(",")","[","]","<",">","|","'","\"","é","ü","ß","İ","ı","Ω","я","中","文","日","ｶ","한","ع","١","٢","ह","ि","ก","\u00a0","\u3000","\u0085","\u2028","\u200b","\u200d","\ufeff","\u00ad","\u0301","\U0001D518","\U0001D52B","\U0001D7CE","\U0001F600","\U0001F44D","\U0001F3FD","\U00020000","\U000104A0","\U0001F1EB","½","²","①","™","ﬁ","[MASK]","[CLS]","<|endoftext|>","<|im_start|>","<think>","|||IP_ADDRESS|||","\x00","\x07","\x7f","\ufffd","$","%","*","/","\\","~","`","^","&","#","@"]
texts=[]
for i in range(600):
    n=random.randint(1,30); texts.append("".join(random.choice(pool) for _ in range(n)))
json.dump({"seed":7,"texts":texts},open('fuzz_texts.json','w'),ensure_ascii=False)
