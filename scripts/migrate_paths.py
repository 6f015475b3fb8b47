#!/usr/bin/env python3
"""One-off: rewrite `use twofactor::...;` trees to the new public paths."""
import re, sys
CRATE = sys.argv[1]          # 'twofactor' or 'crate'
MOVED = {}
for n in "ManualClock RecordingMailer RecordingAudit".split(): MOVED[n]='testing'
for n in "Algorithm Code CodeError Hotp ParamsError SecretError SecretStrength TotpBuilder UnknownAlgorithm VerifyError DEFAULT_DIGITS MIN_DIGITS MAX_DIGITS".split(): MOVED[n]='otp'
for n in "FactorParseError SettingsError TwoFactorRecord".split(): MOVED[n]='account'
for n in "TracingAudit".split(): MOVED[n]='audit'
for n in "GraceStart GracePeriod UnknownTenant SUPERUSER_EXEMPTION".split(): MOVED[n]='policy'
for n in "OtpKind Provisioning QrError TerminalStyle UriError".split(): MOVED[n]='provision'
for n in "SaveOutcome Version Versioned PoolConfig StoreError".split(): MOVED[n]='store'
# The root keeps what a host touches in its first hour; these live in their modules only.
for n in "AuditEvent AuditKind AuditSink".split(): MOVED[n]='audit'
for n in "NoTrustedDevices PolicyExt SuperuserExempt".split(): MOVED[n]='policy'
for n in "DeviceInfo RecoveryCodes TwoFactorStatus Enrolled PendingStep".split(): MOVED[n]='account'
for n in "Aal DeviceToken GrantReason".split(): MOVED[n]='account'
for n in "SystemClock".split(): MOVED[n]='clock'
for n in "NoMailer DynMailer".split(): MOVED[n]='mail'
for n in "DynStore".split(): MOVED[n]='store'
for n in "DeviceId FactorKind".split(): MOVED[n]='vocabulary'
for n in "QrCode".split(): MOVED[n]='provision'
OLD = {('mail','RecordingMailer'):'testing',('audit','RecordingAudit'):'testing',('clock','ManualClock'):'testing'}
ROOT_CFG = {'SqliteStore':'#[cfg(feature = "sqlite")]','PostgresStore':'#[cfg(feature = "postgres")]'}

def parse(s, i, prefix, out):
    # parse a use tree starting at s[i]; prefix is list of segments
    m = re.compile(r'\s*').match(s, i); i = m.end()
    if s[i] == '{':
        i += 1
        while True:
            m = re.compile(r'\s*').match(s, i); i = m.end()
            if s[i] == '}': return i + 1
            i = parse(s, i, prefix, out)
            m = re.compile(r'\s*,?\s*').match(s, i); i = m.end()
    m = re.compile(r'(\w+|\*)').match(s, i)
    seg = m.group(1); i = m.end()
    if s.startswith('::', i):
        return parse(s, i + 2, prefix + [seg], out)
    m = re.compile(r'\s+as\s+(\w+)').match(s, i)
    alias = None
    if m: alias = m.group(1); i = m.end()
    out.append((prefix, seg, alias))
    return i

def remap(prefix, seg):
    if prefix == [] and seg in MOVED: return [MOVED[seg]]
    if len(prefix) == 1 and (prefix[0], seg) in OLD: return [OLD[(prefix[0], seg)]]
    return prefix

def render(items, lead):
    groups = {}
    for prefix, seg, alias in items:
        key = '::'.join(prefix)
        groups.setdefault(key, []).append(seg + (f' as {alias}' if alias else ''))
    lines = []
    for key in sorted(groups, key=lambda k: (k != '', k)):
        names = sorted(set(groups[key]), key=lambda x: (x != 'self', x.lower() if not x.isupper() else x))
        base = CRATE + ('::' + key if key else '')
        if len(names) == 1 and names[0] != 'self': lines.append(f'{lead}use {base}::{names[0]};')
        elif names == ['self']: lines.append(f'{lead}use {base};')
        else: lines.append(f'{lead}use {base}::{{{", ".join(names)}}};')
    return lines

USE = re.compile(r'^(?P<pre>\s*(?:(?:///|//!)\s?)?(?:#\s+)?)(?P<vis>pub(?:\(crate\))?\s+)?use ' + CRATE + r'::')
def process(text):
    lines = text.split('\n'); out = []; i = 0; changed = False
    while i < len(lines):
        m = USE.match(lines[i])
        if not m:
            out.append(lines[i]); i += 1; continue
        pre = m.group('pre'); vis = m.group('vis') or ''
        # gather until ';'
        j = i; buf = lines[i][m.end():]
        docpre = re.match(r'^\s*(?:///|//!)\s?(?:#\s+)?', lines[i])
        while ';' not in buf:
            j += 1
            nxt = lines[j]
            nxt = re.sub(r'^\s*(?:///|//!)\s?(?:#\s)?', '', nxt) if docpre else nxt
            buf += ' ' + nxt
        tree, rest = buf.split(';', 1)
        items = []
        parse(tree, 0, [], items)
        new = [(remap(p, s), s, a) for p, s, a in items]
        if new == items:
            out.extend(lines[i:j + 1]); i = j + 1; continue
        changed = True
        # cfg-gated root items keep their own line
        rendered = render(new, pre + vis)
        out.extend(rendered)
        if rest.strip(): out[-1] += rest
        i = j + 1
    return '\n'.join(out), changed

for p in sys.argv[2:]:
    t = open(p).read(); n, c = process(t)
    if c: open(p, 'w').write(n); print('rewrote', p)
