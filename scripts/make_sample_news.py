"""Writes streams/samples/news_sample.jsonl: fictional but realistic financial headlines.

Deterministic (seeded). About 400 items over five days and twenty topics, from four
fictional wires, with one episode where the banking topic turns sharply negative
(day 3, a fictional regional lender's deposit run) for demos and alert tests.

    python scripts/make_sample_news.py
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

SEED = 20261128
START = datetime(2026, 11, 16, 6, 0, tzinfo=timezone.utc)
SOURCES = {"Harbor Street Wire": "https://news.harborstreet.example", "Ledger Daily": "https://ledgerdaily.example",
           "Meridian Markets": "https://meridianmarkets.example", "Tidewater Financial": "https://tidewaterfin.example"}
COMPANIES = ["Novacrest Systems", "Bluefin Logistics", "Arden Pharmaceuticals", "Quarry Peak Mining",
             "Solvane Energy", "Kestrel Motors", "Larchmont Foods", "Orbis Semiconductor", "Pinegate Retail",
             "Veridian Telecom", "Halcyon Airlines", "Strata Cloud"]
BANKS = ["Harborline Bank", "Keystone Mutual", "Westmarch Capital", "Granite Trust"]
ANALYSTS = ["Calder & Finch", "Morrow Securities", "Ashby Research", "Vantage Partners"]

T = {
    "Analyst Update": ["{a} upgrades {c} to buy, sees 20% upside", "{a} cuts {c} to underweight on margin worries",
                       "{a} initiates {c} at neutral", "{a} raises {c} price target after strong quarter"],
    "Fed | Central Banks": ["Fed holds rates steady, signals patience on cuts", "ECB official warns inflation fight is not over",
                            "Central bank minutes show split over pace of easing", "Fed governor says labour market is cooling gently"],
    "Company | Product News": ["{c} unveils new flagship product line", "{c} recalls 40,000 units over safety defect",
                               "{c} opens new plant in Ohio, adding 900 jobs", "{c} delays product launch to next year"],
    "Treasuries | Corporate Debt": ["Treasury yields climb as traders pare rate-cut bets", "{c} prices $2 billion bond sale",
                                    "Junk bond spreads widen to three-month high", "10-year yield slips after soft retail data"],
    "Dividend": ["{c} raises quarterly dividend 8%", "{c} suspends dividend to preserve cash",
                 "{c} declares special dividend of $1.50 a share", "{c} keeps dividend unchanged"],
    "Earnings": ["{c} beats profit estimates, lifts full-year guidance", "{c} misses revenue forecasts as demand slows",
                 "{c} quarterly earnings in line with expectations", "{c} swings to a loss on restructuring charges"],
    "Energy | Oil": ["Oil rises as OPEC+ extends output cuts", "Crude slides on surprise inventory build",
                     "Natural gas prices jump on cold-weather forecasts", "{c} boosts offshore drilling budget"],
    "Financials": ["{b} reports steady deposit growth", "{b} beats estimates on higher trading revenue",
                   "{b} sets aside more for loan losses", "Regional lenders trade flat ahead of stress-test results"],
    "Currencies": ["Dollar firms against the euro after jobs data", "Yen weakens past 155 per dollar",
                   "Sterling rallies as UK inflation surprises higher", "Emerging-market currencies steady"],
    "General News | Opinion": ["Opinion: markets are underpricing geopolitical risk", "Five things to watch this week",
                               "Column: the case for patience in a choppy market", "Investors brace for a busy data week"],
    "Gold | Metals | Materials": ["Gold hits record as investors seek safety", "Copper falls on weak China factory data",
                                  "{c} cuts copper output guidance", "Silver edges higher with gold"],
    "IPO": ["{c} files for U.S. IPO seeking $1 billion valuation", "{c} shares jump 30% in market debut",
                "{c} postpones IPO citing market volatility", "IPO market shows signs of recovery"],
    "Legal | Regulation": ["SEC charges {c} over misleading disclosures", "{c} settles antitrust suit for $300 million",
                           "Regulators approve new capital rules for lenders", "{c} wins appeal in patent dispute"],
    "M&A | Investments": ["{c} agrees to buy rival in $4 billion deal", "{c} walks away from takeover talks",
                          "Private equity firm takes stake in {c}", "{c} completes acquisition of software unit"],
    "Macro": ["U.S. retail sales rise more than expected", "Euro-zone factory activity contracts again",
              "Jobless claims fall to lowest in two months", "Consumer confidence slips to six-month low"],
    "Markets": ["Stocks close higher as tech rebounds", "Wall Street slides on growth fears",
                "S&P 500 ends flat in quiet trading", "Global shares rally on easing inflation"],
    "Politics": ["Lawmakers reach deal to avert government shutdown", "Trade tensions rise after new tariff threat",
                 "Senate advances infrastructure spending bill", "Election uncertainty weighs on investors"],
    "Personnel Change": ["{c} names new chief executive", "{c} CFO resigns abruptly",
                         "{c} appoints former regulator to board", "{c} chairman to retire next year"],
    "Stock Commentary": ["Is {c} stock a buy after its recent pullback?", "Three reasons to be cautious on {c}",
                         "Why {c} could outperform next year", "{c} stock: what the charts are saying"],
    "Stock Movement": ["{c} shares surge after upbeat outlook", "{c} stock tumbles 12% on guidance cut",
                       "{c} shares edge higher in early trading", "{c} falls to 52-week low"],
}

EPISODE = [  # Day 3: Harborline Bank deposit run and contagion fears (all fictional)
    "Harborline Bank shares plunge 35% after disclosing large bond losses",
    "Harborline Bank customers pull deposits as confidence wavers",
    "Regional bank stocks tumble as Harborline turmoil spreads",
    "Harborline Bank seeks emergency funding, sources say",
    "Ratings agency downgrades Harborline Bank to junk",
    "Keystone Mutual shares sink as investors fear contagion from Harborline",
    "Depositors queue outside Harborline branches amid bank-run fears",
    "Harborline Bank halts share trading pending announcement",
    "Regulators step in to seize Harborline Bank",
    "Bank index posts worst day since 2023 on Harborline collapse",
    "Westmarch Capital loses a fifth of market value in banking rout",
    "Analysts warn regional lenders face wave of deposit outflows",
    "Harborline collapse sparks fears of wider credit crunch",
    "Granite Trust shares slide as investors dump regional banks",
    "Harborline Bank executives face questions over risk controls",
    "Short sellers pile into regional bank stocks after Harborline failure",
    "Keystone Mutual draws on emergency credit line as outflows mount",
    "Bank stocks extend losses for a second day",
]
RECOVERY = ["Regional bank shares rebound as deposit outflows ease",
            "Keystone Mutual says deposits have stabilised",
            "Rival lender agrees to buy Harborline's deposits, calming markets",
            "Bank stocks recover part of losses after regulators backstop deposits"]


def main() -> None:
    rng = random.Random(SEED)
    rows = []
    topics = list(T)
    for hour in range(5 * 24):
        at = START + timedelta(hours=hour)
        if at.hour < 6 or at.hour > 22:
            continue
        for _ in range(rng.choice([2, 3, 3, 4, 4, 5])):
            topic = rng.choice(topics)
            title = rng.choice(T[topic]).format(c=rng.choice(COMPANIES), a=rng.choice(ANALYSTS), b=rng.choice(BANKS))
            rows.append((at + timedelta(minutes=rng.randint(0, 59), seconds=rng.randint(0, 59)), title))
    episode_start = START + timedelta(days=2, hours=7)  # day 3, 13:00 UTC
    for i, title in enumerate(EPISODE):
        rows.append((episode_start + timedelta(minutes=8 * i + rng.randint(0, 5)), title))
    for i, title in enumerate(RECOVERY):
        rows.append((episode_start + timedelta(hours=20 + 2 * i), title))
    rows.sort()
    out = Path(__file__).resolve().parent.parent / "streams" / "samples" / "news_sample.jsonl"
    seen_titles: dict[str, int] = {}
    with out.open("w", encoding="utf-8") as fh:
        for at, title in rows:
            name, base = rng.choice(list(SOURCES.items()))
            n = seen_titles[title] = seen_titles.get(title, 0) + 1
            slug = "-".join(title.lower().replace("%", "pct").replace("$", "").split()[:8]).strip(",.?:")
            slug = "".join(ch for ch in slug if ch.isalnum() or ch == "-")
            url = f"{base}/{at:%Y/%m/%d}/{slug}-{n}?utm_source=feed&utm_medium=rss"
            fh.write(json.dumps({"title": title, "published_at": at.isoformat().replace("+00:00", "Z"),
                                 "source": name, "url": url, "lang": "en"}) + "\n")
    print(f"wrote {len(rows)} items to {out}")


if __name__ == "__main__":
    main()
