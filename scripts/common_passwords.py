"""Build ``src/orchestrion/services/auth/common_passwords.txt`` (run from the repository root).

Offline and deterministic: the passwords everyone tries first (the top of the lists
published after public breaches), keyboard walks and digit runs, and common words and
first names with the suffixes people add (digits, years, ``!``), in lower and
capitalised forms. Only entries of 8 or more characters are kept, since the policy's
minimum length (``ORCHESTRION_AUTH__PASSWORD_MIN_LENGTH``) is never below 8.
"""

from __future__ import annotations

from pathlib import Path

OUT = Path("src/orchestrion/services/auth/common_passwords.txt")
LIMIT = 10_000
MIN_LENGTH = 8

TOP = """
123456 password 12345678 qwerty 123456789 12345 1234 111111 1234567 dragon 123123 baseball
abc123 football monkey letmein 696969 shadow master 666666 qwertyuiop 123321 mustang
1234567890 michael 654321 superman 1qaz2wsx 7777777 121212 000000 qazwsx 123qwe killer
trustno1 jordan jennifer zxcvbnm asdfgh hunter buster soccer harley batman andrew tigger
sunshine iloveyou charlie robert thomas hockey ranger daniel starwars klaster 112233
george computer michelle jessica pepper 11111111 131313 freedom 777777 maggie 159753
aaaaaa ginger princess joshua cheese amanda summer ashley nicole chelsea biteme matthew
access yankees 987654321 dallas austin thunder taylor matrix minecraft william corvette
martin heather secret merlin diamond 1234qwer hammer silver 222222 88888888 anthony
justin bailey q1w2e3r4t5 patrick internet scooter orange golfer cookie richard samantha
bigdog guitar jackson whatever mickey chicken sparky snoopy maverick phoenix camaro
peanut morgan welcome falcon cowboy ferrari samsung andrea smokey steelers joseph
mercedes dakota arsenal eagles melissa boomer booboo spider nascar monster tigers yellow
123123123 gateway marina diablo bulldog qwer1234 compaq purple hardcore banana junior
hannah 123654 porsche lakers iceman money cowboys 987654 london tennis 999999 ncc1701
coffee scooby miller boston q1w2e3r4 brandon yamaha chester mother forever johnny edward
333333 oliver redsox player nikita knight fender barney midnight please brandy chicago
badboy slayer rangers charles angel flower bigdaddy rabbit wizard jasper enter rachel
chris steven winner adidas victoria natasha 1q2w3e4r jasmine winter prince marine
fishing cocacola casper james 232323 raiders 888888 marlboro gandalf asdfasdf crystal
87654321 12344321 golf heaven 1q2w3e qwerty123 password1 password123 admin admin123 root
toor changeme letmein123 welcome1 welcome123 passw0rd p@ssw0rd p@ssword iloveyou1
abcd1234 aa123456 1qaz2wsx3edc zaq12wsx qwe123 1q2w3e4r5t qweasdzxc asdf1234 password12
qwerty12345 1234567891 123456a a123456 azerty loveme zaq1zaq1 football1 baseball1
starwars1 superman1 princess1 sunshine1 shadow1 master1 michael1 jordan23 liverpool
chelsea1 arsenal1 manchester barcelona realmadrid pokemon naruto minecraft1 fortnite
roblox dragonball qwertyuiop123 aa12345678 1234abcd abc12345 abcdef abcdefg abcdefgh
abcd123 123abc password! password1! passw0rd! admin@123 welcome@123 p@ssw0rd123
administrator changeme123 default letmein1 iloveyou123 qwerty1 qwerty12 1qazxsw2
zxcvbnm123 asdfghjkl qwertyui 11223344 12341234 123qweasd 1qaz2wsx! qweqweqwe
superman123 batman123 monkey123 dragon123 football123 baseball123 princess123 sunshine123
shadow123 master123 michael123 jordan123 hunter123 charlie123 killer123 freedom123
secret123 computer123 internet123 whatever123 trustno123 letmeinnow opensesame
"""

WORDS = """
password welcome letmein admin administrator login master dragon monkey shadow sunshine
princess football baseball soccer hockey basketball superman batman iloveyou trustno
starwars michael jennifer jessica ashley charlie daniel thomas robert jordan hunter summer
winter spring autumn orange purple silver golden diamond flower butterfly chocolate cookie
computer internet secret freedom whatever qwerty pokemon nintendo samsung google facebook
linkedin twitter company changeme default guest tester testing server database oracle
cisco backup security access system manager student teacher mother father family friends
lovely angel baby honey sweet loveyou forever jesus christ heaven blessed london paris
berlin newyork chicago boston dallas texas california america canada england germany
france mexico brazil india china russia spain italy monday friday sunday january february
march april june july august september october november december tigger mustang ranger
killer pepper maggie ginger cheese amanda nicole chelsea matthew yankees thunder taylor
matrix minecraft william corvette martin heather merlin hammer bailey patrick scooter
golfer richard samantha guitar jackson mickey chicken sparky snoopy maverick phoenix
camaro peanut morgan falcon cowboy ferrari smokey steelers joseph mercedes dakota arsenal
eagles melissa boomer spider monster tigers yellow gateway marina diablo bulldog banana
junior hannah porsche lakers money london tennis coffee scooby miller brandon yamaha
chester johnny edward oliver player nikita knight fender barney midnight brandy badboy
slayer rangers charles bigdaddy rabbit wizard jasper rachel steven winner adidas victoria
natasha jasmine prince marine fishing cocacola casper james raiders marlboro gandalf
crystal liverpool manchester barcelona naruto fortnite roblox orchestrion workflow
platform developer engineer office welcome qazwsx zxcvbnm asdfgh letmeinplease
"""

NAMES = """
john david james robert mary maria anna sarah laura emma olivia sophia alex andrew chris
matthew joshua ryan kevin brian jason justin eric steven anthony nicole amanda melissa
michelle elizabeth stephanie rebecca samantha hannah lauren rachel alexander benjamin
william nathan tyler jacob ethan noah liam mason lucas logan aiden jackson elijah oliver
emily madison abigail isabella mia charlotte amelia harper evelyn ella scarlett grace
chloe victoria natalie lily zoe leah hailey julia jessica jennifer ashley thomas daniel
michael joseph charles george edward henry peter paul mark jonathan nicholas patrick
"""

SUFFIXES = [
    "",
    "1",
    "12",
    "123",
    "1234",
    "12345",
    "123456",
    "!",
    "1!",
    "123!",
    "01",
    "007",
    "69",
    "99",
    "00",
    "11",
    "22",
    "77",
    "88",
    "@123",
    "#1",
    "2024!",
    "1234!",
]
YEARS = [str(y) for y in range(1970, 2027)]
ROWS = [
    "1234567890",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "!@#$%^&*()",
    "0987654321",
    "1qaz2wsx3edc4rfv5tgb6yhn",
    "qazwsxedcrfvtgbyhnujm",
    "zaq12wsxcde34rfvbgt5",
    "01234567890123456789",
    "98765432109876543210",
    "qweasdzxc",
    "1q2w3e4r5t6y7u8i9o0p",
]


def walks() -> list[str]:
    found: list[str] = []
    for row in ROWS:
        for size in range(MIN_LENGTH, min(len(row), 16) + 1):
            for start in range(len(row) - size + 1):
                part = row[start : start + size]
                found += [part, part[::-1]]
    for unit in ["12", "123", "1234", "abc", "qwe", "asd", "ab", "xo", "69", "password"]:
        for times in range(2, 6):
            found.append(unit * times)
    return found


def variants(word: str, suffixes: list[str]) -> list[str]:
    return [base + tail for tail in suffixes for base in (word, word.capitalize())]


def leet(word: str) -> str:
    return word.replace("a", "@").replace("o", "0").replace("s", "$").replace("e", "3")


def build() -> list[str]:
    """Most likely first: the cut at ``LIMIT`` drops the least likely."""
    ordered: list[str] = []
    ordered += TOP.split()
    ordered += walks()
    words, names = WORDS.split(), NAMES.split()
    for word in words:
        ordered += variants(word, SUFFIXES)
    for word in words[:40] + names[:40]:
        for year in YEARS:
            ordered.append(word + year)
    for name in names:
        ordered += variants(name, SUFFIXES[:12])
    for word in words[:80]:
        ordered += [leet(word) + tail for tail in SUFFIXES[:8]]
    for a in words[:30]:
        for b in words[:30]:
            if a != b:
                ordered.append(a + b)
    seen: dict[str, None] = {}
    for entry in ordered:
        key = entry.lower()
        if len(entry) >= MIN_LENGTH and key not in seen and len(set(entry)) > 1:
            seen[key] = None
        if len(seen) >= LIMIT:
            break
    return sorted(seen)


if __name__ == "__main__":
    entries = build()
    header = (
        "# Common passwords refused by the password policy (one per line, compared "
        "case-insensitively).\n# Generated by scripts/common_passwords.py; edit that, not this.\n"
    )
    OUT.write_text(header + "\n".join(entries) + "\n", encoding="utf-8")
    print(f"{len(entries)} entries written to {OUT}")
