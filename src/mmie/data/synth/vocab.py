"""Names and tweet templates of the synthetic datasets.

Templates are space-tokenised strings with slots: ``{E}`` (the MNER entity), ``{A}``/``{B}`` (people),
``{O}`` (organisation), ``{L}`` (location), ``{M}`` (misc: events, shows, products), ``{U}`` (a user
handle, never an entity). Two kinds of template exist on purpose:

* *neutral* templates say nothing about the type of the entity or the relation of the pair; the
  generator draws them independently of the label, so on those posts the text carries no label
  information and only the cue image decides;
* *telling* templates contain cue words ("married", "shares fell", "just landed in") that decide the
  label from the text alone.

The mechanism settings (docs/synthetic.md) add neutral templates of two kinds: *distractor*
templates name the background colour ``{C}`` of the image that decides ("{E} is the {C} one"), and
*order* templates say that the post is a sequence ("{E} , then and now") without saying what it
shows. For MRE they are written once for every type pair, with ``{H}`` and ``{T}`` for the head and
tail slots of the pair.

People and organisations are invented; places are real cities; nothing here describes a real person.
"""

from __future__ import annotations

ENTITY_TYPES = ("PER", "LOC", "ORG", "MISC")

FIRST_NAMES = (
    "Emma",
    "Liam",
    "Olivia",
    "Noah",
    "Ava",
    "Ethan",
    "Sophia",
    "Mason",
    "Mia",
    "Lucas",
    "Chloe",
    "Daniel",
    "Grace",
    "James",
    "Zoe",
    "Ryan",
    "Hannah",
    "Kevin",
    "Laura",
    "Marcus",
    "Priya",
    "Diego",
    "Aisha",
    "Tom",
    "Naomi",
    "Jake",
    "Elena",
    "Omar",
    "Sara",
    "Ben",
    "Yuki",
    "Carlos",
    "Fatima",
    "Leo",
)
LAST_NAMES = (
    "Walker",
    "Bennett",
    "Harris",
    "Okafor",
    "Nguyen",
    "Rossi",
    "Fischer",
    "Patel",
    "Moreno",
    "Kim",
    "Sullivan",
    "Clarke",
    "Hughes",
    "Tanaka",
    "Silva",
    "Brooks",
    "Foster",
    "Reyes",
    "Murphy",
    "Lindqvist",
    "Adeyemi",
    "Novak",
    "Costa",
    "Hayes",
    "Dubois",
    "Kowalski",
    "Mensah",
    "Haddad",
)
# Invented organisations with a real-world ring (no real company is said to do anything).
ORGANISATIONS = (
    "Contoso",
    "Globex",
    "Initech",
    "Acme Corp",
    "Northwind Traders",
    "Hooli",
    "Vandelay Industries",
    "Oceanic Airlines",
    "Cyberdyne Systems",
    "Aperture Science",
    "Dunder Mifflin",
    "Pied Piper",
    "Massive Dynamic",
    "Stark Industries",
    "Wonka Industries",
    "Umbrella Labs",
    "Tyrell Corporation",
    "Soylent",
    "Gringotts Bank",
    "Bluth Company",
    "Riverside FC",
    "Harbour City United",
)
LOCATIONS = (
    "London",
    "Tokyo",
    "Nairobi",
    "Chicago",
    "Lisbon",
    "Toronto",
    "Mumbai",
    "Berlin",
    "Seattle",
    "Cape Town",
    "New York",
    "Lake Tahoe",
    "Rio de Janeiro",
    "Melbourne",
    "Dublin",
    "Manchester",
    "Kyoto",
    "Denver",
    "Oslo",
    "Lagos",
    "Buenos Aires",
    "Vancouver",
    "Marrakesh",
    "Hanoi",
)
MISC_NAMES = (
    "World Cup",
    "Super Bowl",
    "Comic Con",
    "Oscars",
    "Wimbledon",
    "Eurovision",
    "Olympics",
    "Met Gala",
    "Grammys",
    "Champions League",
    "Fashion Week",
    "Pride Parade",
    "Tour de France",
    "Starfall Saga",
    "Midnight Harbour",
    "Galaxy Quest",
    "Neon Drift",
    "Pixel Kart 3",
)
# Names that can be a person, a place, an organisation or a product / event: the text cannot tell.
AMBIGUOUS_NAMES = (
    "Jordan",
    "Phoenix",
    "Chelsea",
    "Victoria",
    "Austin",
    "Madison",
    "Lincoln",
    "Savannah",
    "Georgia",
    "Sydney",
    "Florence",
    "Dakota",
    "Aurora",
    "Orlando",
    "Jackson",
    "Brooklyn",
    "Dallas",
    "Hudson",
    "Mercedes",
    "Tiffany",
    "Camden",
    "Paris",
    "Nova",
    "Orion",
    "Apollo",
    "Luna",
    "Atlas",
    "Mercury",
    "Everest",
    "Bentley",
    "Sierra",
    "Chester",
    "Montana",
    "Troy",
    "Santa Fe",
    "Silver Lake",
    "Blue Ridge",
    "Royal Oak",
    "Golden Gate",
    "Red Rock",
)
HANDLES = (
    "@daily_pics",
    "@tl_updates",
    "@newsroom24",
    "@fan_account",
    "@weekend_vibes",
    "@the_feed",
    "@photo_hour",
    "@local_buzz",
    "@trendwatch",
    "@snapshots",
)

# --- MNER -----------------------------------------------------------------------------------

MNER_NEUTRAL = (
    "can't stop thinking about {E} today",
    "{E} is everything right now",
    "finally got to see {E} this weekend !",
    "a few more pictures of {E} #tbt",
    "RT {U} : look at {E} in these pics",
    "{E} never disappoints",
    "throwback to {E} last summer",
    "honestly {E} deserves more attention",
    "so much love for {E} <3",
    "this is {E} . that's the tweet",
    "new photos of {E} just dropped",
    "who else is obsessed with {E} ?",
    "{E} in the sunshine",
    "we need to talk about {E}",
    "first time seeing {E} like this",
    "{E} :)",
)
MNER_TELLING = {
    "PER": (
        "happy birthday to the one and only {E} !",
        "{E} scored twice in the second half",
        "actor {E} talks about her new film",
        "singer {E} announced a world tour",
        "congrats to {E} on the promotion , well deserved",
        "interview with author {E} tonight at 8",
        "coach {E} says the team is ready",
    ),
    "ORG": (
        "{E} shares fell 3 % after the earnings call",
        "{E} is hiring engineers , apply now",
        "the company {E} announced a new ceo",
        "{E} released a statement about the outage",
        "just signed a contract with {E}",
        "{E} opens its new office next month",
    ),
    "LOC": (
        "heavy snow expected in the city of {E} tonight",
        "just landed in {E} !",
        "traffic on the way to {E} is terrible",
        "beautiful sunset over {E}",
        "moving to {E} next month",
        "flights to {E} cancelled due to storms",
    ),
    "MISC": (
        "just finished watching {E} , what a season",
        "tickets for {E} sold out in minutes",
        "anyone else watching {E} tonight ?",
        "the {E} trailer is out",
        "can't wait for {E} this year",
        "{E} was the best event of the year",
    ),
}
# A second, text-decided entity some posts carry: (suffix template, its type).
MNER_CONTEXT = (
    ("| photo by {A}", "PER"),
    ("| via {O}", "ORG"),
    ("| live from {L}", "LOC"),
    ("| {M} weekend", "MISC"),
)
# Distractor posts: {C} is the named background colour of the image that decides.
MNER_DISTRACTOR = (
    "{E} is the {C} one",
    "{E} in the {C} pic",
    "look at {E} ( {C} photo )",
    "the {C} picture is {E}",
    "{E} , see the {C} one",
    "spot {E} : {C} background",
)
# Order posts: a sequence of pictures; the last cue is how things are now.
MNER_ORDER = (
    "{E} , then and now",
    "{E} : how it started vs how it's going",
    "{E} before and after",
    "swipe to the end : {E} now",
    "{E} over the years",
)
MNER_NO_ENTITY = (
    "good morning everyone , coffee first",
    "what a day . so tired",
    "can't believe it's friday already",
    "new week , new goals",
    "this weather is unreal",
    "RT {U} : nobody talks about this enough",
)

# --- MRE ------------------------------------------------------------------------------------

# Type pairs whose relation the text leaves open, with the relations the images decide between.
# "None" has no cue: the images simply show nothing that relates the pair.
MRE_AMBIGUOUS_GROUPS = {
    ("PER", "PER"): ("/per/per/couple", "/per/per/peer", "None"),
    ("PER", "ORG"): ("/per/org/member_of", "None"),
    ("PER", "LOC"): ("/per/loc/place_of_residence", "None"),
    ("ORG", "LOC"): ("/org/loc/locate_at", "None"),
    ("PER", "MISC"): ("/per/misc/present_in", "None"),
}
MRE_NEUTRAL = {
    ("PER", "PER"): (
        "{A} and {B} last night",
        "{A} with {B} #tbt",
        "new pics of {A} and {B}",
        "{A} & {B} . that's it , that's the tweet",
        "look who {A} brought along : {B}",
        "{A} and {B} today",
    ),
    ("PER", "ORG"): (
        "{A} and {O} today",
        "big day for {A} and {O}",
        "{A} x {O}",
        "{A} . {O} . yes",
        "new pics : {A} and {O}",
    ),
    ("PER", "LOC"): (
        "{A} in {L}",
        "{A} . {L} . perfect",
        "{A} , {L} , sunday",
        "more pics of {A} from {L}",
    ),
    ("ORG", "LOC"): (
        "{O} , {L}",
        "{O} in {L} this morning",
        "{O} x {L}",
        "more pics : {O} and {L}",
    ),
    ("PER", "MISC"): (
        "{A} and {M}",
        "{A} x {M}",
        "{A} . {M} . wow",
        "pics of {A} and {M}",
    ),
}
# Telling templates: relation -> (head type, tail type, templates).
MRE_TELLING = {
    "/per/per/couple": (
        "PER",
        "PER",
        (
            "{A} and his wife {B} celebrate 10 years together",
            "{A} married {B} in a small ceremony",
            "{A} and her husband {B} at the premiere",
        ),
    ),
    "/per/per/peer": (
        "PER",
        "PER",
        (
            "{A} and teammate {B} after the match",
            "{A} and co-star {B} on set",
            "{A} and colleague {B} at the summit",
        ),
    ),
    "/per/org/member_of": (
        "PER",
        "ORG",
        (
            "{A} has joined {O} as head coach",
            "{A} , ceo of {O} , steps down",
            "{O} signs {A} on a three year deal",
        ),
    ),
    "/per/loc/place_of_residence": (
        "PER",
        "LOC",
        (
            "{A} , who lives in {L} , says it is time",
            "{A} bought a house in {L}",
            "{A} at home in {L} with the family",
        ),
    ),
    "/org/loc/locate_at": (
        "ORG",
        "LOC",
        (
            "{O} headquarters in {L}",
            "{O} opens a new store in {L}",
            "{L} based {O} announced record sales",
        ),
    ),
    "/per/misc/present_in": (
        "PER",
        "MISC",
        (
            "{A} performing at the {M} tonight",
            "{A} on the red carpet at the {M}",
            "{A} will host the {M}",
        ),
    ),
}
MRE_TELLING_NONE = {
    ("PER", "PER"): ("{A} has never met {B}", "{A} says {B} is overrated"),
    ("PER", "ORG"): ("{A} tweeted about {O} again", "{A} is not a fan of {O}"),
    ("PER", "LOC"): ("{A} has never been to {L}", "{A} complained about the weather in {L}"),
    ("ORG", "LOC"): ("{O} ads are everywhere , even in {L}", "{O} has no plans for {L}"),
    ("PER", "MISC"): ("{A} skipped the {M} this year", "{A} did not watch the {M}"),
}
# Distractor and order templates of every type pair: {H} / {T} become the pair's head / tail slots.
MRE_DISTRACTOR = (
    "{H} and {T} in the {C} picture",
    "{H} with {T} , the {C} one",
    "the {C} pic : {H} and {T}",
    "{H} x {T} ( {C} photo )",
    "{H} and {T} , see the {C} one",
)
MRE_ORDER = (
    "{H} and {T} , then and now",
    "{H} and {T} : how it started vs how it's going",
    "{H} & {T} before and after",
    "swipe to the end : {H} and {T} now",
)
