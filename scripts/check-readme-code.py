#!/usr/bin/env python3
"""The README's Swift code is compiled: every ```swift block in README.md must be, verbatim, a
region of an example target marked `// README: <name>` … `// README: end` (dedented), and every
marked region must appear in the README. Examples build in CI, so a README block that no longer
compiles, or an example changed without its README block, fails CI. A block that cannot be
compiled here is fenced "```swift uncompiled: <why>" and listed on every run.

    python3 scripts/check-readme-code.py [README.md] [Examples]
"""
import pathlib
import re
import sys
import textwrap

readme = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
examples = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else "Examples")

text = readme.read_text()
blocks = [m.group(1) for m in re.finditer(r"^```swift\n(.*?)^```$", text, re.S | re.M)]
# A block fenced "```swift uncompiled: <why>" is exempt, and said so on every run.
uncompiled = re.findall(r"^```swift uncompiled: (.*)$", text, re.M)
regions = {}
for source in sorted(examples.rglob("*.swift")):
    lines = source.read_text().splitlines(keepends=True)
    name = None
    for number, line in enumerate(lines, 1):
        marker = re.match(r"\s*// README: (\S+)\s*$", line)
        if marker and marker.group(1) != "end":
            name, start, body = marker.group(1), number, []
        elif marker:
            if name is None:
                sys.exit(f"{source}:{number}: '// README: end' without a start")
            regions[f"{source}:{start} ({name})"] = textwrap.dedent("".join(body))
            name = None
        elif name is not None:
            body.append(line)
    if name is not None:
        sys.exit(f"{source}: region '{name}' is not closed with '// README: end'")

failed = False
for index, block in enumerate(blocks, 1):
    if block not in regions.values():
        first = block.splitlines()[0] if block else ""
        print(f"README.md: swift block {index} ({first!r}) is not a region of any example target", file=sys.stderr)
        failed = True
for where, region in regions.items():
    if region not in blocks:
        print(f"{where}: this region is not quoted in README.md as a ```swift block", file=sys.stderr)
        failed = True
if failed:
    sys.exit(1)
print(f"README: {len(blocks)} swift blocks, each quoted from an example target")
for why in uncompiled:
    print(f"README: 1 swift block NOT compiled: {why}")
