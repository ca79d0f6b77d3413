"""Container names: validation and Docker-style random names (adjective_scientist)."""

from __future__ import annotations

import random
import re

from berth.errors import InvalidArgument

VALID_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

_LEFT = ("admiring adoring affectionate agitated amazing angry awesome blissful bold boring brave "
         "busy charming clever cool compassionate competent confident cranky crazy dazzling "
         "determined distracted dreamy eager ecstatic elastic elated elegant eloquent epic "
         "fervent festive flamboyant focused friendly frosty gallant gifted goofy gracious happy "
         "hardcore heuristic hopeful hungry infallible inspiring jolly jovial keen kind laughing "
         "loving lucid magical modest musing mystifying naughty nervous nice nifty nostalgic "
         "objective optimistic peaceful pedantic pensive practical priceless quirky quizzical "
         "relaxed reverent romantic sad serene sharp silly sleepy stoic strange stupefied "
         "suspicious sweet tender thirsty trusting unruffled upbeat vibrant vigilant vigorous "
         "wizardly wonderful xenodochial youthful zealous zen").split()
_RIGHT = ("albattani allen almeida archimedes ardinghelli aryabhata austin babbage banach bardeen "
          "bartik bassi bell benz bhabha bose brahmagupta brown burnell cannon carson cerf "
          "chandrasekhar chaplygin chatelet clarke colden cori cray curie darwin davinci dijkstra "
          "dubinsky easley einstein elion engelbart euclid euler fermat fermi feynman franklin "
          "galileo gates goldberg goldstine goodall hamilton hawking heisenberg hermann hodgkin "
          "hoover hopper hugle hypatia jackson jang jennings jepsen johnson joliot jones kalam "
          "kapitsa keldysh keller kepler khorana kilby kirch knuth kowalevski lalande lamarr "
          "lamport leakey leavitt lederberg lehmann lewin lichterman liskov lovelace lumiere "
          "mahavira margulis matsumoto maxwell mayer mccarthy mcclintock mclean mcnulty meitner "
          "mendel mendeleev merkle mirzakhani moore morse murdock napier nash neumann newton "
          "nightingale nobel noether northcutt noyce panini pare pascal pasteur payne perlman pike "
          "poincare poitras ptolemy raman ramanujan ride ritchie robinson roentgen rosalind "
          "rubin saha sammet sanderson shannon shaw shirley shockley sinoussi snyder spence "
          "stonebraker sutherland swanson swartz swirles taussig tesla tharp thompson torvalds "
          "turing varahamihira visvesvaraya volhard wescoff wiles williams wilson wing wozniak "
          "wright wu yalow yonath zhukovsky").split()


def random_name(taken: set[str]) -> str:
    for _ in range(100):
        name = f"{random.choice(_LEFT)}_{random.choice(_RIGHT)}"
        if name not in taken:
            return name
    return f"{name}{random.randint(0, 99)}"


def validate_name(name: str) -> str:
    """The bare name (no leading slash), or InvalidArgument with Docker's message."""
    if not VALID_NAME.match(name):
        raise InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")
