#!/usr/bin/env python3
"""One-off: TwoFactor::builder(A, B, C) -> TwoFactor::builder(A).mailer(B).policy(C)."""
import re, sys
PRE = re.compile(r'^(?:\s*(?:///|//!))*\s*')
POST = re.compile(r'(?:\s*(?:///|//!))*\s*$')
def clean(a):
    a = PRE.sub('', a); a = POST.sub('', a); return a
def rewrite(s):
    out=[]; i=0; n=0
    key='TwoFactor::builder('
    while True:
        j=s.find(key,i)
        if j<0: out.append(s[i:]); break
        out.append(s[i:j]); k=j+len(key); depth=0; args=[]; cur=''; inpipe=False
        while True:
            c=s[k]
            if inpipe:
                cur+=c
                if c=='|': inpipe=False
            elif c in '([{': depth+=1; cur+=c
            elif c in ')]}':
                if depth==0: break
                depth-=1; cur+=c
            elif c=='|' and depth==0 and clean(cur) in ('', 'move'):
                inpipe=True; cur+=c
            elif c==',' and depth==0: args.append(cur); cur=''
            else: cur+=c
            k+=1
        args.append(cur)
        args=[clean(a) for a in args]
        if args and args[-1]=='': args.pop()
        if len(args)==3:
            out.append(f'TwoFactor::builder({args[0]}).mailer({args[1]}).policy({args[2]})'); n+=1
        else:
            out.append(s[j:k+1])
        i=k+1
    return ''.join(out), n
for p in sys.argv[1:]:
    s=open(p).read(); t,n=rewrite(s)
    if n: open(p,'w').write(t); print(p,n)
