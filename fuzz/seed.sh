#!/bin/sh
# Builds the seed corpora in fuzz/corpus/<target>/ (git-ignored) from material already in the
# repository, so every fuzzer starts from inputs that reach deep into its parser:
#   smtp_session          conformance/transcripts/smtp/*.txt, re-encoded as op/len/chunk records
#   smtp_relay            the client lines of the same transcripts after the login (8-byte seed,
#                         then op/len/chunk records with an "answer pending" op after each line)
#   pop3_session          the same op encoding, from a few scripted POP3 exchanges below
#   smtp_reply, pop3_codec  the MTA/server lines of the transcripts, plus POP3 commands and blocks
#   smime_open            gematik's sample chain (../shared/spec/samples/smime-profil/)
#   directory_certificate the sample recipients' certificates (DER), with a clock byte in front
#   konnektor_response    the XML fixtures of core/tests/konnektor_fixtures.rs, dumped by an
#                         ignored test in core/tests/fuzz_regressions.rs (needs one cargo build)
# Usage: cd fuzz && ./seed.sh [--no-konnektor]
set -eu
cd "$(dirname "$0")"
ROOT=..
SAMPLES=${SAMPLES:-$ROOT/../shared/spec/samples/smime-profil}
[ -d "$SAMPLES" ] || SAMPLES=/work/shared/spec/samples/smime-profil
C=corpus
mkdir -p $C/smtp_session $C/pop3_session $C/smtp_reply $C/pop3_codec $C/smime_open \
  $C/directory_certificate $C/konnektor_response $C/login_name $C/smtp_data $C/smtp_relay

python3 - "$ROOT/conformance/transcripts/smtp" "$C" <<'PY'
import os, re, sys
src, out = sys.argv[1], sys.argv[2]
def esc(s):  # the transcript's `~` escapes
    return re.sub(rb'\\(x[0-9a-fA-F]{2}|r|n|t|\\)', lambda m: {b'r': b'\r', b'n': b'\n', b't': b'\t', b'\\': b'\\'}.get(m.group(1)) or bytes([int(m.group(1)[1:], 16)]), s.encode())
def rec(op, chunk):  # the op/len/chunk record of smtp_session.rs and pop3_session.rs
    return b''.join(bytes([op, len(chunk[i:i+255])]) + chunk[i:i+255] for i in range(0, max(len(chunk), 1), 255))
EVENTS = {'connected': (5, b''), 'client-closed': (9, b'\0'), 'upstream-closed': (9, b'\1'), 'connect-failed': (9, b'\2')}
VERDICT = {'usable': 0, 'no-certificate': 1, 'conflicting-ids': 2, 'directory-unavailable': 3}
for name in sorted(os.listdir(src)):
    session, replies, data = b'', b'', b''
    relay, logged_in = b'\x5a' * 8, False
    for line in open(os.path.join(src, name), encoding='utf-8'):
        tag, text = line[:2], line[3:].rstrip('\n')
        logged_in = logged_in or line.startswith('M: 235 ')
        if tag == 'E:' and logged_in and text.split()[0] == 'client-closed':
            relay += b'\x05'
        if tag in ('C:', 'C~'):
            b = text.encode() + b'\r\n' if tag == 'C:' else esc(text)
            session += rec(0, b); data += b
            if logged_in:
                relay += rec(0, b) + b'\x07'
        elif tag in ('S:', 'S~'):
            b = text.encode() + b'\r\n' if tag == 'S:' else esc(text)
            session += rec(3, b); replies += b
        elif tag == 'T:':
            session += rec(8, bytes([max(1, min(255, int(text.strip('+s')) // 10))]))
        elif tag == 'E:':
            w = text.split()
            if w[0] in EVENTS: session += rec(*EVENTS[w[0]])
            elif w[0] == 'recipient': session += rec(6, bytes([VERDICT.get(w[-1], 0)]))
            elif w[0] == 'protected': session += rec(7, b'Subject: x\r\n\r\nbody\r\n')
            elif w[0] == 'protect-failed': session += rec(7, b'')
    base = name[:-4]
    open(f'{out}/smtp_session/{base}', 'wb').write(session)
    open(f'{out}/smtp_reply/{base}', 'wb').write(replies)
    open(f'{out}/smtp_data/{base}', 'wb').write(b'\x07' + data)
    if len(relay) > 8:
        open(f'{out}/smtp_relay/{base}', 'wb').write(relay)
# POP3: a login, STAT/LIST/UIDL/TOP/RETR with a KIM and a plain message, DELE, QUIT.
msg = b'X-KOM-LE-Version: 1.0\r\nSubject: x\r\n\r\n..stuffed\r\nbody\r\n.\r\n'
pop3 = [(3, b'+OK POP3 ready\r\n')]
pop3 += [(0, b'USER user@komle.de#127.0.0.1:1110#m#c#w\r\n'), (0, b'PASS secret\r\n'), (6, b''),
         (3, b'+OK ready\r\n'), (3, b'+OK\r\n'), (3, b'+OK logged in\r\n'),
         (0, b'STAT\r\nLIST\r\n'), (3, b'+OK 1 300\r\n+OK\r\n1 300\r\n.\r\n'),
         (0, b'TOP 1 5\r\n'), (3, b'+OK\r\nX-KOM-LE-Version: 1.0\r\n\r\n.\r\n'),
         (0, b'RETR 1\r\n'), (3, b'+OK 300 octets\r\n' + msg), (7, b'Subject: y\r\n\r\nklar\r\n'),
         (0, b'UIDL\r\nDELE 1\r\nQUIT\r\n'), (3, b'+OK\r\n1 abc\r\n.\r\n+OK\r\n+OK bye\r\n'), (9, b'\1')]
sasl = [(0, b'CAPA\r\n'), (0, b'AUTH PLAIN\r\n'), (0, b'AHVzZXJAa29tbGUuZGUjMTI3LjAuMC4xOjExMTAjbSNjI3cAc2VjcmV0\r\n'),
        (6, b''), (3, b'+OK\r\n'), (8, b'\x40'), (9, b'\0')]
for i, script in enumerate([pop3, sasl]):
    open(f'{out}/pop3_session/script{i}', 'wb').write(b''.join(rec(op, c) for op, c in script))
for i, b in enumerate([b'USER a\r\n', b'TOP 1 10\r\n', b'LIST 2\r\n', b'AUTH PLAIN\r\n', b'\x03+OK\r\n..a\r\n.\r\n',
                       b'\x00line\r\n.\r.\r\n.\r\nnext', b'\x02.\r\n', b'RETR 1\r\n', b'CAPA\r\n']):
    open(f'{out}/pop3_codec/seed{i}', 'wb').write(b)
for i, s in enumerate(['user@komle.de#mta.komle.de:465#M1#C1#W1', 'a#[::1]:25#m#c#w#u#k#x', 'a#h:1#m#c#*']):
    open(f'{out}/login_name/seed{i}', 'w').write(s)
PY

# gematik's sample chain: headers, wraps, SignedData and AuthEnvelopedData (DER).
cp "$SAMPLES"/inputEmail.txt* $C/smime_open/
for crt in "$SAMPLES"/recipient*/*.crt; do
  { printf '\200'; cat "$crt"; } > "$C/directory_certificate/$(basename "$crt")"
done
# One entry with all attributes, in the `name\0value\0…` form of directory_certificate.rs.
crt=$(ls "$SAMPLES"/recipient*/hci-enc*.crt | head -1)
{ printf '\200mail\0a@komle.de\0komLeData\0001.5+,a@komle.de\0userCertificate;binary\0'; cat "$crt"; } \
  > $C/directory_certificate/entry

if [ "${1:-}" != "--no-konnektor" ]; then
  KOMLE_FUZZ_SEEDS="$PWD/$C/konnektor_response" cargo test -q -p komle-core --test fuzz_regressions \
    --manifest-path $ROOT/Cargo.toml -- --ignored dump_konnektor_seeds
fi
echo "seeded: $(ls $C | while read t; do printf '%s=%s ' "$t" "$(ls $C/$t | wc -l)"; done)"
