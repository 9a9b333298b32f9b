"""Writes the tiny fixtures: the real datasets' hub schemas, in the local data-dir layout.

    python jaxlt/resources/tiny_data/build_tiny_data.py

Sentences come from a few templates per language filled from small lexicons, so the data is
learnable (XNLI: a negation marks contradiction, an unrelated fact neutral) and parallel across
languages (record i is the same example in every language). Deterministic.
"""

from __future__ import annotations

import json
import os
import random

from jaxlt import atomic

ROOT = os.path.dirname(os.path.abspath(__file__))
SIZES = {"train": 56, "validation": 16, "test": 16}  # 56 >= 50-shot + spare

LEX = {
    "en": dict(
        PER=["Anna Smith", "John Brown", "Maria Lopez", "David Miller", "Sarah Wilson",
             "Peter Clark", "Laura King", "James Hall"],
        LOC=["London", "Paris", "Cairo", "Moscow", "Delhi", "Nairobi", "Helsinki", "Jakarta"],
        ORG=["Google", "United Nations", "Red Cross", "BBC", "Nokia", "Oxford University",
             "World Bank", "Toyota"]),
    "ar": dict(
        PER=["أحمد علي", "فاطمة حسن", "محمد سالم", "ليلى يوسف", "عمر خالد", "سارة محمود",
             "يوسف إبراهيم", "مريم عادل"],
        LOC=["القاهرة", "دبي", "بيروت", "عمان", "الرياض", "تونس", "بغداد", "الدوحة"],
        ORG=["الأمم المتحدة", "جامعة القاهرة", "الصليب الأحمر", "البنك الدولي", "أرامكو",
             "الجزيرة", "منظمة الصحة العالمية", "جامعة الدول العربية"]),
    "ru": dict(
        PER=["Анна Иванова", "Иван Петров", "Мария Смирнова", "Сергей Козлов", "Ольга Новикова",
             "Дмитрий Орлов", "Елена Волкова", "Алексей Попов"],
        LOC=["Москва", "Казань", "Самара", "Омск", "Новосибирск", "Сочи", "Тверь", "Пермь"],
        ORG=["Газпром", "Яндекс", "Аэрофлот", "Сбербанк", "МГУ", "Роснефть", "Лукойл",
             "Росатом"]),
    "hi": dict(
        PER=["राम शर्मा", "सीता वर्मा", "अमित कुमार", "प्रिया सिंह", "राहुल गुप्ता", "नेहा जोशी",
             "विकास यादव", "अंजलि मेहता"],
        LOC=["दिल्ली", "मुंबई", "जयपुर", "पटना", "लखनऊ", "भोपाल", "पुणे", "आगरा"],
        ORG=["भारतीय रेलवे", "टाटा समूह", "इसरो", "संयुक्त राष्ट्र", "दिल्ली विश्वविद्यालय",
             "रिज़र्व बैंक", "इन्फोसिस", "विप्रो"]),
    "bn": dict(
        PER=["রহিম উদ্দিন", "করিম হোসেন", "সুমি আক্তার", "রাজু আহমেদ", "নাসরিন বেগম",
             "তানভীর ইসলাম", "মিতা রায়", "অনিক দাস"],
        LOC=["ঢাকা", "কলকাতা", "খুলনা", "সিলেট", "রাজশাহী", "চট্টগ্রাম", "বরিশাল", "রংপুর"],
        ORG=["ঢাকা বিশ্ববিদ্যালয়", "গ্রামীণ ব্যাংক", "জাতিসংঘ", "ব্র্যাক", "বাংলাদেশ বিমান",
             "রেড ক্রস", "বিশ্ব ব্যাংক", "ইউনিসেফ"]),
    "sw": dict(
        PER=["Juma Hassan", "Amina Mwangi", "Baraka Otieno", "Neema Kamau", "Said Ali",
             "Zawadi Njeri", "Musa Omondi", "Rehema Wanjiku"],
        LOC=["Nairobi", "Mombasa", "Dodoma", "Arusha", "Kisumu", "Zanzibar", "Tanga", "Mwanza"],
        ORG=["Umoja wa Mataifa", "Benki ya Dunia", "Chuo Kikuu cha Nairobi", "Safaricom",
             "Shirika la Afya Duniani", "Vodacom", "Msalaba Mwekundu", "Kenya Airways"]),
    "fi": dict(
        PER=["Matti Virtanen", "Liisa Korhonen", "Juha Nieminen", "Anna Mäkinen", "Mikko Laine",
             "Sanna Heikkinen", "Pekka Koskinen", "Laura Järvinen"],
        LOC=["Helsinki", "Tampere", "Turku", "Oulu", "Espoo", "Vantaa", "Lahti", "Kuopio"],
        ORG=["Nokia", "Yle", "Finnair", "Kone", "Helsingin yliopisto", "Punainen Risti",
             "Fortum", "Kesko"]),
    "id": dict(
        PER=["Budi Santoso", "Siti Rahayu", "Agus Wijaya", "Dewi Lestari", "Rudi Hartono",
             "Rina Wati", "Andi Saputra", "Maya Sari"],
        LOC=["Jakarta", "Bandung", "Surabaya", "Medan", "Yogyakarta", "Semarang", "Makassar",
             "Denpasar"],
        ORG=["Garuda Indonesia", "Bank Mandiri", "Universitas Indonesia", "Pertamina", "Telkom",
             "Palang Merah", "Bank Dunia", "Gojek"]),
    "de": dict(
        PER=["Anna Müller", "Peter Schmidt", "Julia Fischer", "Thomas Weber", "Laura Wagner",
             "Michael Becker", "Sophie Schulz", "Jan Hoffmann"],
        LOC=["Berlin", "Hamburg", "München", "Köln", "Bremen", "Dresden", "Leipzig", "Bonn"],
        ORG=["Siemens", "Lufthansa", "Deutsche Bahn", "Bosch", "Volkswagen", "Rotes Kreuz",
             "Allianz", "Adidas"]),
    "es": dict(
        PER=["Ana García", "Carlos López", "María Pérez", "Juan Martínez", "Lucía Sánchez",
             "Pedro Gómez", "Elena Ruiz", "Diego Torres"],
        LOC=["Madrid", "Sevilla", "Valencia", "Bilbao", "Lima", "Bogotá", "Quito", "Granada"],
        ORG=["Telefónica", "Iberia", "Banco Santander", "Cruz Roja", "Repsol", "Zara",
             "Universidad de Chile", "Naciones Unidas"]),
}

# XNLI: premise, then per label (entailment, neutral, contradiction) two hypothesis templates.
XNLI = {
    "en": ("{PER} lives in {LOC} and works for {ORG}.",
           ["{PER} lives in {LOC}.", "{PER} works for {ORG}."],
           ["{PER} likes to cook.", "{PER} has three children."],
           ["{PER} has never been to {LOC}.", "{PER} does not work for {ORG}."]),
    "ar": ("{PER} يعيش في {LOC} ويعمل في {ORG}.",
           ["{PER} يعيش في {LOC}.", "{PER} يعمل في {ORG}."],
           ["{PER} يحب الطبخ.", "{PER} لديه ثلاثة أطفال."],
           ["{PER} لم يزر {LOC} أبدا.", "{PER} لا يعمل في {ORG}."]),
    "ru": ("{PER} живёт в городе {LOC} и работает в компании {ORG}.",
           ["{PER} живёт в городе {LOC}.", "{PER} работает в компании {ORG}."],
           ["{PER} любит готовить.", "У {PER} трое детей."],
           ["{PER} никогда не был в городе {LOC}.", "{PER} не работает в компании {ORG}."]),
    "hi": ("{PER} {LOC} में रहता है और {ORG} में काम करता है।",
           ["{PER} {LOC} में रहता है।", "{PER} {ORG} में काम करता है।"],
           ["{PER} को खाना बनाना पसंद है।", "{PER} के तीन बच्चे हैं।"],
           ["{PER} कभी {LOC} नहीं गया।", "{PER} {ORG} में काम नहीं करता है।"]),
    "sw": ("{PER} anaishi {LOC} na anafanya kazi katika {ORG}.",
           ["{PER} anaishi {LOC}.", "{PER} anafanya kazi katika {ORG}."],
           ["{PER} anapenda kupika.", "{PER} ana watoto watatu."],
           ["{PER} hajawahi kufika {LOC}.", "{PER} hafanyi kazi katika {ORG}."]),
    "de": ("{PER} wohnt in {LOC} und arbeitet bei {ORG}.",
           ["{PER} wohnt in {LOC}.", "{PER} arbeitet bei {ORG}."],
           ["{PER} kocht gern.", "{PER} hat drei Kinder."],
           ["{PER} war nie in {LOC}.", "{PER} arbeitet nicht bei {ORG}."]),
    "es": ("{PER} vive en {LOC} y trabaja en {ORG}.",
           ["{PER} vive en {LOC}.", "{PER} trabaja en {ORG}."],
           ["A {PER} le gusta cocinar.", "{PER} tiene tres hijos."],
           ["{PER} nunca ha estado en {LOC}.", "{PER} no trabaja en {ORG}."]),
}

# PAN-X: space-tokenised templates; {PER}, {PER2}, {LOC}, {ORG} expand to entity tokens.
PANX = {
    "en": ["{PER} lives in {LOC} .", "{PER} works for {ORG} .", "{ORG} opened an office in {LOC} .",
           "{PER} visited {LOC} with {PER2} ."],
    "ar": ["{PER} يعيش في {LOC} .", "{PER} يعمل في {ORG} .", "افتتحت {ORG} مكتبا في {LOC} .",
           "زار {PER} مدينة {LOC} مع {PER2} ."],
    "ru": ["{PER} живёт в городе {LOC} .", "{PER} работает в компании {ORG} .",
           "{ORG} открыл офис в городе {LOC} .", "{PER} посетил город {LOC} вместе с {PER2} ."],
    "hi": ["{PER} {LOC} में रहता है ।", "{PER} {ORG} में काम करता है ।",
           "{ORG} ने {LOC} में दफ़्तर खोला ।", "{PER} ने {PER2} के साथ {LOC} की यात्रा की ।"],
    "bn": ["{PER} {LOC} শহরে থাকেন ।", "{PER} {ORG} এ কাজ করেন ।", "{ORG} {LOC} শহরে অফিস খুলেছে ।",
           "{PER} {PER2} এর সাথে {LOC} ভ্রমণ করেছেন ।"],
    "sw": ["{PER} anaishi {LOC} .", "{PER} anafanya kazi katika {ORG} .",
           "{ORG} imefungua ofisi {LOC} .", "{PER} alitembelea {LOC} pamoja na {PER2} ."],
    "fi": ["{PER} asuu kaupungissa {LOC} .", "{PER} työskentelee yhtiössä {ORG} .",
           "{ORG} avasi toimiston kaupungissa {LOC} .", "{PER} ja {PER2} vierailivat kaupungissa {LOC} ."],
    "id": ["{PER} tinggal di {LOC} .", "{PER} bekerja di {ORG} .", "{ORG} membuka kantor di {LOC} .",
           "{PER} mengunjungi {LOC} bersama {PER2} ."],
}
PANX_TAG_IDS = {"O": 0, "B-PER": 1, "I-PER": 2, "B-ORG": 3, "I-ORG": 4, "B-LOC": 5, "I-LOC": 6}

# QA: context, then (question, answer slot) pairs.
QA = {
    "en": ("{PER} was born in {LOC} in {YEAR}. {PER} works for {ORG}.",
           [("Where was {PER} born?", "LOC"), ("When was {PER} born?", "YEAR"),
            ("Who does {PER} work for?", "ORG")]),
    "ar": ("ولد {PER} في {LOC} عام {YEAR}. يعمل {PER} في {ORG}.",
           [("أين ولد {PER}؟", "LOC"), ("متى ولد {PER}؟", "YEAR"), ("أين يعمل {PER}؟", "ORG")]),
    "ru": ("{PER} родился в городе {LOC} в {YEAR} году. {PER} работает в компании {ORG}.",
           [("В каком городе родился {PER}?", "LOC"), ("В каком году родился {PER}?", "YEAR"),
            ("В какой компании работает {PER}?", "ORG")]),
    "bn": ("{PER} {YEAR} সালে {LOC} শহরে জন্মগ্রহণ করেন। {PER} {ORG} এ কাজ করেন।",
           [("{PER} কোথায় জন্মগ্রহণ করেন?", "LOC"), ("{PER} কোন সালে জন্মগ্রহণ করেন?", "YEAR"),
            ("{PER} কোথায় কাজ করেন?", "ORG")]),
    "fi": ("{PER} syntyi kaupungissa {LOC} vuonna {YEAR}. {PER} työskentelee yhtiössä {ORG}.",
           [("Missä kaupungissa {PER} syntyi?", "LOC"), ("Minä vuonna {PER} syntyi?", "YEAR"),
            ("Missä yhtiössä {PER} työskentelee?", "ORG")]),
    "id": ("{PER} lahir di {LOC} pada tahun {YEAR}. {PER} bekerja di {ORG}.",
           [("Di mana {PER} lahir?", "LOC"), ("Kapan {PER} lahir?", "YEAR"),
            ("Di mana {PER} bekerja?", "ORG")]),
    "sw": ("{PER} alizaliwa {LOC} mwaka {YEAR}. {PER} anafanya kazi katika {ORG}.",
           [("{PER} alizaliwa wapi?", "LOC"), ("{PER} alizaliwa mwaka gani?", "YEAR"),
            ("{PER} anafanya kazi wapi?", "ORG")]),
    "hi": ("{PER} का जन्म {YEAR} में {LOC} में हुआ था। {PER} {ORG} में काम करता है।",
           [("{PER} का जन्म कहाँ हुआ था?", "LOC"), ("{PER} का जन्म कब हुआ था?", "YEAR"),
            ("{PER} कहाँ काम करता है?", "ORG")]),
    "de": ("{PER} wurde {YEAR} in {LOC} geboren. {PER} arbeitet bei {ORG}.",
           [("Wo wurde {PER} geboren?", "LOC"), ("Wann wurde {PER} geboren?", "YEAR"),
            ("Wo arbeitet {PER}?", "ORG")]),
    "es": ("{PER} nació en {LOC} en {YEAR}. {PER} trabaja en {ORG}.",
           [("¿Dónde nació {PER}?", "LOC"), ("¿Cuándo nació {PER}?", "YEAR"),
            ("¿Dónde trabaja {PER}?", "ORG")]),
}
TYDIQA_NAMES = {"ar": "arabic", "bn": "bengali", "en": "english", "fi": "finnish",
                "id": "indonesian", "ru": "russian", "sw": "swahili"}

PAWSX = {
    "en": ("{PER} hired {PER2} in {LOC} in {YEAR}.", "In {YEAR}, {PER} hired {PER2} in {LOC}.",
           "In {YEAR}, {PER2} hired {PER} in {LOC}."),
    "de": ("{PER} hat {PER2} {YEAR} in {LOC} eingestellt.",
           "Im Jahr {YEAR} hat {PER} in {LOC} {PER2} eingestellt.",
           "Im Jahr {YEAR} hat {PER2} in {LOC} {PER} eingestellt."),
    "es": ("{PER} contrató a {PER2} en {LOC} en {YEAR}.",
           "En {YEAR}, {PER} contrató a {PER2} en {LOC}.",
           "En {YEAR}, {PER2} contrató a {PER} en {LOC}."),
}


def slots(rng: random.Random) -> dict:
    """Lexicon indices shared by every language, so record i is parallel across languages."""
    per, per2 = rng.sample(range(8), 2)
    return {"PER": per, "PER2": per2, "LOC": rng.randrange(8), "ORG": rng.randrange(8),
            "YEAR": rng.randrange(1950, 2000), "choice": rng.randrange(6)}


def fill(template: str, lang: str, s: dict) -> str:
    lex = LEX[lang]
    return template.format(PER=lex["PER"][s["PER"]], PER2=lex["PER"][s["PER2"]],
                           LOC=lex["LOC"][s["LOC"]], ORG=lex["ORG"][s["ORG"]], YEAR=s["YEAR"])


def unique_slots(seed: int, count: int, key) -> list[dict]:
    """`count` slot draws whose `key` differs, so no example repeats across splits."""
    rng, seen, out = random.Random(seed), set(), []
    while len(out) < count:
        s = slots(rng)
        if key(s) not in seen:
            seen.add(key(s))
            out.append(s)
    return out


def split_slices():
    start = 0
    for split, n in SIZES.items():
        yield split, start, start + n
        start += n


def xnli_records(lang: str, draws: list[dict]) -> dict[str, list[dict]]:
    premise, *by_label = XNLI[lang]
    out = {}
    for split, a, b in split_slices():
        out[split] = [{"premise": fill(premise, lang, s),
                       "hypothesis": fill(by_label[s["choice"] % 3][s["choice"] // 3], lang, s),
                       "label": s["choice"] % 3} for s in draws[a:b]]
    return out


def panx_record(lang: str, s: dict) -> dict:
    tokens, tags = [], []
    for word in PANX[lang][s["choice"] % 4].split():
        if word.startswith("{") and word.endswith("}"):
            slot = word[1:-1]
            kind = "PER" if slot == "PER2" else slot
            entity = LEX[lang][kind][s[slot]].split()
            tokens += entity
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(entity) - 1)
        else:
            tokens.append(word)
            tags.append("O")
    return {"tokens": tokens, "ner_tags": [PANX_TAG_IDS[t] for t in tags],
            "langs": [lang] * len(tokens)}


def qa_record(lang: str, s: dict, ident: str, title: bool) -> dict:
    context_t, questions = QA[lang]
    question_t, slot = questions[s["choice"] % 3]
    context = fill(context_t, lang, s)
    answer = str(s["YEAR"]) if slot == "YEAR" else LEX[lang][slot][s[slot]]
    record = {"id": ident, "context": context, "question": fill(question_t, lang, s),
              "answers": {"text": [answer], "answer_start": [context.index(answer)]}}
    if title:
        record = {"id": ident, "title": LEX[lang]["PER"][s["PER"]], **{k: v for k, v in
                                                                      record.items() if k != "id"}}
    return record


def write_jsonl(path: str, records: list[dict]) -> None:
    atomic.write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def main() -> None:
    total = sum(SIZES.values())
    draws = unique_slots(1, total, lambda s: (s["PER"], s["LOC"], s["ORG"], s["choice"]))
    for lang in XNLI:
        for split, records in xnli_records(lang, draws).items():
            write_jsonl(os.path.join(ROOT, "facebook/xnli", lang, f"{split}.jsonl"), records)

    draws = unique_slots(2, total, lambda s: tuple(panx_record("en", s)["tokens"]))
    for lang in PANX:
        for split, a, b in split_slices():
            write_jsonl(os.path.join(ROOT, "google/xtreme", f"PAN-X.{lang}", f"{split}.jsonl"),
                        [panx_record(lang, s) for s in draws[a:b]])

    # TyDiQA-GoldP: one file per split for all languages, language in the id.
    draws = unique_slots(3, 56 + 16, lambda s: (s["PER"], s["LOC"], s["YEAR"], s["choice"] % 3))
    rng = random.Random(4)
    for split, a, b in (("train", 0, 56), ("validation", 56, 72)):
        records = [qa_record(lang, s, f"{name}-{rng.getrandbits(60)}-0", title=True)
                   for lang, name in TYDIQA_NAMES.items() for s in draws[a:b]]
        write_jsonl(os.path.join(ROOT, "google-research-datasets/tydiqa/secondary_task",
                                 f"{split}.jsonl"), records)

    for lang in ("ar", "de", "en", "es", "hi", "ru"):  # XQuAD: evaluation only
        records = [qa_record(lang, s, f"{rng.getrandbits(64):016x}", title=False)
                   for s in draws[56:72]]
        write_jsonl(os.path.join(ROOT, "google/xquad", f"xquad.{lang}", "validation.jsonl"),
                    records)

    draws = unique_slots(5, total, lambda s: (s["PER"], s["PER2"], s["LOC"], s["YEAR"],
                                              s["choice"] % 2))
    for lang, (s1, para, nonpara) in PAWSX.items():
        for split, a, b in split_slices():
            write_jsonl(os.path.join(ROOT, "google-research-datasets/paws-x", lang,
                                     f"{split}.jsonl"),
                        [{"id": a + i + 1, "sentence1": fill(s1, lang, s),
                          "sentence2": fill(para if s["choice"] % 2 else nonpara, lang, s),
                          "label": s["choice"] % 2} for i, s in enumerate(draws[a:b])])


if __name__ == "__main__":
    main()
