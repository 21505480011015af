"""Print the project's requirements from pyproject.toml, one per line, for an image's pip layer
(installed before the source is copied, so a code change does not reinstall them).

    python requirements.py [--extras articles,postgres] [--without torch,peft]
"""
import argparse
import re
import tomllib

parser = argparse.ArgumentParser()
parser.add_argument("--extras", default="")
parser.add_argument("--without", default="", help="distributions left out (the lean image's training-only ones)")
args = parser.parse_args()
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
wanted = list(project["dependencies"])
for extra in filter(None, args.extras.split(",")):
    wanted += project["optional-dependencies"][extra]
skip = {name.strip().lower() for name in args.without.split(",") if name.strip()}
print("\n".join(d for d in wanted if re.split(r"[<>=!\[ ;]", d, maxsplit=1)[0].lower() not in skip))
