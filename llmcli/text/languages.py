"""Language names and codes for `llmcli translate`, and a small dependency-free language detector.

resolve_language() turns what a user writes (an English or native name, an ISO 639-1/2/3 code, a FLORES
code such as deu_Latn, or a BCP-47 tag such as zh-Hant or pt_BR) into a Language with a canonical tag.

detect_language() decides by script first (kana means Japanese, Hangul Korean, Thai script Thai...) and,
for scripts shared by several languages (Latin, Cyrillic, Arabic, Devanagari), by scoring frequent words,
telling pieces of other words ("ción", "ung") and the letters each language's alphabet has or lacks. It
says None rather than guess: translate copies a text unchanged when the detected language is the target,
so a wrong answer costs more than no answer.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass

from llmcli.errors import UsageError


@dataclass(frozen=True)
class Language:
    """A language as the user sees it (code) and as the model is told (name)."""

    code: str  # canonical BCP-47 tag, also used in output file names
    name: str  # English name used in prompts


# code, English name, default script(s) (a script subtag naming one is dropped), other codes and names.
_BASE: tuple[tuple[str, str, str, str], ...] = (
    ("af", "Afrikaans", "Latn", "afr"),
    ("am", "Amharic", "Ethi", "amh|አማርኛ"),
    ("ar", "Arabic", "Arab", "ara|arb|العربية|عربي"),
    ("az", "Azerbaijani", "Latn", "aze|azj|azeri|azərbaycan|azərbaycanca"),
    ("be", "Belarusian", "Cyrl", "bel|беларуская"),
    ("bg", "Bulgarian", "Cyrl", "bul|български"),
    ("bn", "Bengali", "Beng", "ben|bangla|বাংলা"),
    ("bs", "Bosnian", "Latn", "bos|bosanski"),
    ("ca", "Catalan", "Latn", "cat|català|valencian|valencià"),
    ("cs", "Czech", "Latn", "ces|cze|čeština|česky"),
    ("cy", "Welsh", "Latn", "cym|wel|cymraeg"),
    ("da", "Danish", "Latn", "dan|dansk"),
    ("de", "German", "Latn", "deu|ger|deutsch"),
    ("el", "Greek", "Grek", "ell|gre|ελληνικά"),
    ("en", "English", "Latn", "eng"),
    ("eo", "Esperanto", "Latn", "epo"),
    ("es", "Spanish", "Latn", "spa|español|castellano|castilian"),
    ("et", "Estonian", "Latn", "est|ekk|eesti"),
    ("eu", "Basque", "Latn", "eus|baq|euskara"),
    ("fa", "Persian", "Arab", "fas|per|pes|farsi|فارسی"),
    ("fi", "Finnish", "Latn", "fin|suomi"),
    ("fil", "Filipino", "Latn", "tl|tgl|tagalog|wikang filipino"),
    ("fr", "French", "Latn", "fra|fre|français"),
    ("ga", "Irish", "Latn", "gle|gaeilge|irish gaelic"),
    ("gl", "Galician", "Latn", "glg|galego"),
    ("gu", "Gujarati", "Gujr", "guj|ગુજરાતી"),
    ("ha", "Hausa", "Latn", "hau"),
    ("he", "Hebrew", "Hebr", "heb|iw|ivrit|עברית"),
    ("hi", "Hindi", "Deva", "hin|हिन्दी|हिंदी"),
    ("hr", "Croatian", "Latn", "hrv|hrvatski"),
    ("hu", "Hungarian", "Latn", "hun|magyar"),
    ("hy", "Armenian", "Armn", "hye|arm|հայերեն"),
    ("id", "Indonesian", "Latn", "ind|in|bahasa indonesia"),
    ("is", "Icelandic", "Latn", "isl|ice|íslenska"),
    ("it", "Italian", "Latn", "ita|italiano"),
    ("ja", "Japanese", "Jpan", "jpn|nihongo|日本語"),
    ("ka", "Georgian", "Geor", "kat|geo|ქართული"),
    ("kk", "Kazakh", "Cyrl", "kaz|қазақ тілі|қазақша"),
    ("km", "Khmer", "Khmr", "khm|ខ្មែរ|ភាសាខ្មែរ"),
    ("kn", "Kannada", "Knda", "kan|ಕನ್ನಡ"),
    ("ko", "Korean", "Kore Hang", "kor|한국어|한국말|조선말"),
    ("la", "Latin", "Latn", "lat|latina"),
    ("lo", "Lao", "Laoo", "lao|ລາວ|ພາສາລາວ"),
    ("lt", "Lithuanian", "Latn", "lit|lietuvių"),
    ("lv", "Latvian", "Latn", "lav|lvs|latviešu"),
    ("mk", "Macedonian", "Cyrl", "mkd|mac|македонски"),
    ("ml", "Malayalam", "Mlym", "mal|മലയാളം"),
    ("mr", "Marathi", "Deva", "mar|मराठी"),
    ("ms", "Malay", "Latn", "msa|may|zsm|bahasa melayu|melayu"),
    ("mt", "Maltese", "Latn", "mlt|malti"),
    ("my", "Burmese", "Mymr", "mya|bur|myanmar|မြန်မာ|မြန်မာဘာသာ"),
    ("nb", "Norwegian Bokmål", "Latn", "no|nob|nor|norwegian|norsk|bokmål|norsk bokmål"),
    ("ne", "Nepali", "Deva", "nep|npi|नेपाली"),
    ("nl", "Dutch", "Latn", "nld|dut|nederlands|flemish|vlaams"),
    ("nn", "Norwegian Nynorsk", "Latn", "nno|nynorsk|norsk nynorsk"),
    ("pa", "Punjabi", "Guru", "pan|panjabi|ਪੰਜਾਬੀ"),
    ("pl", "Polish", "Latn", "pol|polski"),
    ("pt", "Portuguese", "Latn", "por|português"),
    ("ro", "Romanian", "Latn", "ron|rum|mo|moldovan|română"),
    ("ru", "Russian", "Cyrl", "rus|русский|русский язык"),
    ("si", "Sinhala", "Sinh", "sin|sinhalese|සිංහල"),
    ("sk", "Slovak", "Latn", "slk|slo|slovenčina"),
    ("sl", "Slovenian", "Latn", "slv|slovene|slovenščina"),
    ("sq", "Albanian", "Latn", "sqi|alb|als|shqip"),
    ("sr", "Serbian", "Cyrl", "srp|српски|srpski"),
    ("sv", "Swedish", "Latn", "swe|svenska"),
    ("sw", "Swahili", "Latn", "swa|swh|kiswahili"),
    ("ta", "Tamil", "Taml", "tam|தமிழ்"),
    ("te", "Telugu", "Telu", "tel|తెలుగు"),
    ("th", "Thai", "Thai", "tha|ไทย|ภาษาไทย"),
    ("tr", "Turkish", "Latn", "tur|türkçe"),
    ("uk", "Ukrainian", "Cyrl", "ukr|українська"),
    ("ur", "Urdu", "Arab", "urd|اردو"),
    ("uz", "Uzbek", "Latn", "uzb|uzn|oʻzbek|o'zbek|ozbek"),
    ("vi", "Vietnamese", "Latn", "vie|tiếng việt"),
    ("yo", "Yoruba", "Latn", "yor|yorùbá"),
    ("zh", "Chinese", "Hans", "zho|chi|cmn"),
    ("zu", "Zulu", "Latn", "zul|isizulu"),
)

# Tags with a name of their own, and the names that mean them.
_VARIANTS: tuple[tuple[str, str, str], ...] = (
    (
        "zh-Hans",
        "Simplified Chinese",
        "chinese|chinese simplified|mandarin|中文|汉语|简体中文|简体|中文简体|普通话",
    ),
    ("zh-Hant", "Traditional Chinese", "chinese traditional|繁體中文|繁体中文|繁體|中文繁體|正體中文"),
    ("pt-BR", "Brazilian Portuguese", "brazilian|português brasileiro|português do brasil"),
    ("pt-PT", "European Portuguese", "português europeu|português de portugal"),
    ("en-GB", "British English", "en-uk|british"),
    ("en-US", "American English", "american"),
    ("en-AU", "Australian English", ""),
    ("en-CA", "Canadian English", ""),
    ("es-419", "Latin American Spanish", "español latinoamericano"),
    ("es-MX", "Mexican Spanish", "español mexicano"),
    ("es-ES", "European Spanish", "español de españa"),
    ("fr-CA", "Canadian French", "français canadien|québécois"),
    ("sr-Latn", "Serbian (Latin script)", "serbian latin"),
)

_SCRIPT_NAMES = {
    "Arab": "Arabic", "Armn": "Armenian", "Beng": "Bengali", "Cyrl": "Cyrillic", "Deva": "Devanagari",
    "Ethi": "Ethiopic", "Geor": "Georgian", "Grek": "Greek", "Gujr": "Gujarati", "Guru": "Gurmukhi",
    "Hang": "Hangul", "Hans": "Simplified Han", "Hant": "Traditional Han", "Hebr": "Hebrew",
    "Jpan": "Japanese", "Khmr": "Khmer", "Knda": "Kannada", "Kore": "Korean", "Laoo": "Lao", "Latn": "Latin",
    "Mlym": "Malayalam", "Mymr": "Myanmar", "Sinh": "Sinhala", "Taml": "Tamil", "Telu": "Telugu",
    "Thai": "Thai",
}  # fmt: skip

_REGION_NAMES = {
    "419": "Latin America", "AE": "United Arab Emirates", "AR": "Argentina", "AT": "Austria",
    "AU": "Australia", "BE": "Belgium", "BO": "Bolivia", "BR": "Brazil", "BY": "Belarus", "CA": "Canada",
    "CH": "Switzerland", "CL": "Chile", "CN": "China", "CO": "Colombia", "CR": "Costa Rica", "CU": "Cuba",
    "CY": "Cyprus", "DE": "Germany", "DK": "Denmark", "DO": "Dominican Republic", "DZ": "Algeria",
    "EC": "Ecuador", "EG": "Egypt", "ES": "Spain", "FI": "Finland", "FR": "France", "GB": "United Kingdom",
    "GR": "Greece", "GT": "Guatemala", "HK": "Hong Kong", "ID": "Indonesia", "IE": "Ireland",
    "IL": "Israel", "IN": "India", "IQ": "Iraq", "IR": "Iran", "IT": "Italy", "JO": "Jordan", "JP": "Japan",
    "KR": "South Korea", "KW": "Kuwait", "LB": "Lebanon", "LI": "Liechtenstein", "LU": "Luxembourg",
    "MA": "Morocco", "ME": "Montenegro", "MO": "Macao", "MX": "Mexico", "MY": "Malaysia", "NG": "Nigeria",
    "NL": "Netherlands", "NO": "Norway", "NZ": "New Zealand", "PA": "Panama", "PE": "Peru",
    "PH": "Philippines", "PK": "Pakistan", "PR": "Puerto Rico", "PT": "Portugal", "PY": "Paraguay",
    "QA": "Qatar", "RS": "Serbia", "RU": "Russia", "SA": "Saudi Arabia", "SE": "Sweden", "SG": "Singapore",
    "SV": "El Salvador", "SY": "Syria", "TN": "Tunisia", "TR": "Turkey", "TW": "Taiwan", "UA": "Ukraine",
    "US": "United States", "UY": "Uruguay", "VE": "Venezuela", "ZA": "South Africa",
}  # fmt: skip

_HINT = (
    "use a name or code, e.g. German, de, zh-Hans, pt-BR, ja; `llmcli translate --list-languages` lists all"
)
# language[-Script][-REGION], after folding: "deu_Latn", "zh-Hant-TW", "es-419".
_TAG = re.compile(r"([a-z]{2,3})(?:-([a-z]{4}))?(?:-([a-z]{2}|\d{3}))?")
_FOLD_PUNCT = str.maketrans("_(),（），", "-      ")


def _fold(text: str) -> str:
    """Lowercase, NFC, '_' as '-', no parentheses or commas, single spaces."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().translate(_FOLD_PUNCT).split())


def _ascii_fold(key: str) -> str:
    """key without accents ("français" -> "francais"), or key itself when that leaves non-ASCII letters."""
    bare = "".join(c for c in unicodedata.normalize("NFD", key) if not unicodedata.combining(c))
    return bare if bare.isascii() else key


def _build() -> tuple[dict[str, Language], dict[str, str], dict[str, tuple[str, ...]], dict[str, Language]]:
    """Languages by code, base codes by any code, default scripts by base code, languages by folded name."""
    by_code = {code: Language(code, name) for code, name, _, _ in _BASE}
    by_code.update({code: Language(code, name) for code, name, _ in _VARIANTS})
    codes = {code: code for code, *_ in _BASE}
    scripts = {code: tuple(s.casefold() for s in script.split()) for code, _, script, _ in _BASE}
    names: dict[str, Language] = {}
    for code, name, _, aliases in _BASE:
        for alias in [name, *aliases.split("|")]:
            if _TAG.fullmatch(alias) and len(alias) <= 3:
                codes[alias] = code
            elif code != "zh":
                names[_fold(alias)] = by_code[code]
    for code, name, aliases in _VARIANTS:
        for alias in [name, *filter(None, aliases.split("|"))]:
            names[_fold(alias)] = by_code[code]
    # Plain "zh" means Simplified Chinese, the more common written form; "Chinese" itself is no Language.
    del by_code["zh"]
    for key, language in list(names.items()):
        names.setdefault(_ascii_fold(key), language)
    return by_code, codes, scripts, names


_LANGUAGES, _CODES, _DEFAULT_SCRIPTS, _NAMES = _build()
_BASE_NAMES = {code: name for code, name, _, _ in _BASE}


def known_languages() -> list[Language]:
    """Every language resolve_language knows, sorted by name (for `--list-languages`)."""
    return sorted(_LANGUAGES.values(), key=lambda language: (language.name.casefold(), language.code))


def resolve_language(text: str) -> Language:
    """The language a user means by a name or code; UsageError listing examples when unknown."""
    key = _fold(text)
    if key in _NAMES:
        return _NAMES[key]
    match = _TAG.fullmatch(key)
    if match and match[1] in _CODES:
        language = _from_tag(_CODES[match[1]], match[2], match[3])
        if language is not None:
            return language
    if _ascii_fold(key) in _NAMES:
        return _NAMES[_ascii_fold(key)]
    candidates = [name for name in _NAMES if len(name) >= 4]
    close = difflib.get_close_matches(_ascii_fold(key), candidates, n=1, cutoff=0.8)
    suggestion = f"did you mean {_NAMES[close[0]].name}? " if close else ""
    raise UsageError(f"unknown language {text!r}", hint=f"{suggestion}{_HINT}")


def _from_tag(base: str, script: str | None, region: str | None) -> Language | None:
    """The Language for a parsed tag of a known base language; None for an unknown script."""
    if base == "zh" and script in (None, "hans", "hant"):
        if script is None:
            script = "hant" if region in ("tw", "hk", "mo") else "hans"
        return _LANGUAGES[f"zh-{script.title()}"]
    if script in _DEFAULT_SCRIPTS[base]:
        script = None
    script_tag = script.title() if script else None
    if script_tag is not None and script_tag not in _SCRIPT_NAMES:
        return None
    region_tag = region.upper() if region else None
    code = "-".join(filter(None, (base, script_tag, region_tag)))
    if code in _LANGUAGES:
        return _LANGUAGES[code]
    details = []
    if script_tag:
        details.append(f"{_SCRIPT_NAMES[script_tag]} script")
    if region_tag:
        details.append(_REGION_NAMES.get(region_tag, region_tag))
    return Language(code, f"{_BASE_NAMES[base]} ({', '.join(details)})")


# --- detection -------------------------------------------------------------------------------------------

_SAMPLE_CHARS = 20_000
_CODE_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[^\n]*\n.*?(?:^ {0,3}\1[`~]*[ \t]*$|\Z)", re.M | re.S)
_INLINE_CODE = re.compile(r"(`+)[^\n]+?\1")
_URL = re.compile(r"(?:https?://|ftp://|www\.)\S+")
# A word: letters and the combining marks Indic, Arabic and Hebrew words carry; an apostrophe stays on
# the left part ("l'", "dell'") because French and Italian elisions are telling words.
_WORD = re.compile(
    r"(?:[^\W\d_]|[\u0300-\u036f\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed"
    r"\u0900-\u0963\u0971-\u0dff]|l·(?=l))+(?:'(?=[^\W\d_]))?"
)

# Script of every code point from a start up to the next start; gaps are None.
_SCRIPT_RANGES: tuple[tuple[int, str | None], ...] = (
    (0x0041, "Latn"), (0x005B, None), (0x0061, "Latn"), (0x007B, None), (0x00C0, "Latn"), (0x00D7, None),
    (0x00D8, "Latn"), (0x00F7, None), (0x00F8, "Latn"), (0x0250, None), (0x0370, "Grek"), (0x0400, "Cyrl"),
    (0x0530, None), (0x0531, "Armn"), (0x0590, None), (0x05D0, "Hebr"), (0x05F3, None), (0x0620, "Arab"),
    (0x064B, None), (0x066E, "Arab"), (0x06D4, None), (0x06FA, "Arab"), (0x0700, None), (0x0750, "Arab"),
    (0x0780, None), (0x0900, "Deva"), (0x0980, "Beng"), (0x0A00, "Guru"), (0x0A80, "Gujr"), (0x0B00, None),
    (0x0B80, "Taml"), (0x0C00, "Telu"), (0x0C80, "Knda"), (0x0D00, "Mlym"), (0x0D80, "Sinh"),
    (0x0E00, "Thai"), (0x0E80, "Laoo"), (0x0F00, None), (0x1000, "Mymr"), (0x10A0, "Geor"),
    (0x1100, "Hang"), (0x1200, "Ethi"), (0x13A0, None), (0x1780, "Khmr"), (0x1800, None), (0x1E00, "Latn"),
    (0x1F00, "Grek"), (0x2000, None), (0x3041, "Kana"), (0x3097, None), (0x30A1, "Kana"), (0x30FB, None),
    (0x30FC, "Kana"), (0x3100, None), (0x3130, "Hang"), (0x3190, None), (0x31F0, "Kana"), (0x3200, None),
    (0x3400, "Hani"), (0x4DC0, None), (0x4E00, "Hani"), (0xA000, None), (0xAC00, "Hang"), (0xD7A4, None),
    (0xF900, "Hani"), (0xFB00, None), (0xFB50, "Arab"), (0xFE00, None), (0xFE70, "Arab"), (0xFF00, None),
    (0xFF66, "Kana"), (0xFF9E, None), (0x20000, "Hani"), (0x2FA20, None),
)  # fmt: skip
_RANGE_STARTS = [start for start, _ in _SCRIPT_RANGES]
# A Han, kana or Hangul character carries about as much as a few Latin letters when weighing scripts.
_SCRIPT_WEIGHT = {"Hani": 3, "Kana": 3, "Hang": 3}
_CJK = ("Hani", "Kana", "Hang")
# Scripts written by one language here.
_SCRIPT_LANGUAGE = {
    "Grek": "el", "Hebr": "he", "Armn": "hy", "Beng": "bn", "Guru": "pa", "Gujr": "gu", "Taml": "ta",
    "Telu": "te", "Knda": "kn", "Mlym": "ml", "Sinh": "si", "Thai": "th", "Laoo": "lo", "Mymr": "my",
    "Geor": "ka", "Ethi": "am", "Khmr": "km",
}  # fmt: skip

# Frequent characters whose Simplified and Traditional forms differ, pair by pair; none of them is in
# ordinary use in the other form (后/後, 着/著, 里/裡, 台/臺 are, so they are left out).
_SIMPLIFIED = frozenset(
    "这们来时个说国会为对发过还没经现动机开关长问间学实体点进种样两东车电业产见应报门让从当头书话语认识题难边"
    "网员吗给听觉买卖岁总结区场与无条运设务际传请将军众亲历战权义师帮图变选单观论该谁么华马鱼鸟风飞爱钱写处乐"
    "热药红线页号别"
)
_TRADITIONAL = frozenset(
    "這們來時個說國會為對發過還沒經現動機開關長問間學實體點進種樣兩東車電業產見應報門讓從當頭書話語認識題難邊"
    "網員嗎給聽覺買賣歲總結區場與無條運設務際傳請將軍眾親歷戰權義師幫圖變選單觀論該誰麼華馬魚鳥風飛愛錢寫處樂"
    "熱藥紅線頁號別爲"
)


@dataclass(frozen=True)
class _Profile:
    code: str
    script: str
    letters: str  # letters beyond a-z (or beyond the script's common core) that the alphabet has
    words: str  # frequent words, space separated
    # Pieces of other words, "_" marking a word's start or end ("ción_", "_meng"), space separated.
    fragments: str = ""


_PROFILES = (
    _Profile(
        "en", "Latn", "",
        "the of and to in a is that for it was on with as he be by at are this his from or have an they "
        "which not but had she were has been their her we there will would can all who more its also when "
        "than them these about into after said what one out some only other you i our do if so no new could "
        "should up most many such first how where while because through between those each did any very may "
        "must being against during before however without two people time years",
        fragments="th wh ght ing_ ould ough ly_ ness_ ings_",
    ),
    _Profile(
        "de", "Latn", "äöüß",
        "der die und in den von zu das mit sich des auf für ist im dem nicht ein eine als auch es an werden "
        "aus er hat dass sie nach wird bei einer um am sind noch wie einem über einen so zum war haben nur "
        "oder aber vor zur bis mehr durch man sein wurde sei wenn können diese dieser kann wir ich ihr sehr "
        "vom unter gegen seine hatte wurden zwischen sowie jedoch dann doch schon immer wieder also etwa "
        "dort hier damit daher seit ihre ihren ihrer ihrem seiner seinen seinem keine kein alle viele "
        "andere anderen mehrere ob weil während ohne zwei drei jahr jahre jahren neue neuen ersten bereits "
        "heute worden würde hatten gibt sagte ihn ihm uns dies dieses diesem diesen jeder jede beim ins",
        fragments="sch tz ung_ ungen_ keit heit lich isch äu pf chen_ _zu",
    ),
    _Profile(
        "fr", "Latn", "àâæçéèêëîïôœùûüÿ",
        "de la le et les des en un du une que est pour qui dans par plus pas au sur ne se ce il sont aux "
        "avec son sa ont ses mais comme on été cette elle ou nous leur tout fait être entre était ces l' d' "
        "qu' n' s' c' j' lui aussi où après très peut ils elles sous sans deux dont même avait à cet chez "
        "donc puis encore selon lors depuis avant pendant vers tous toutes autres autre peu bien fois ainsi "
        "alors déjà toujours nouveau nouvelle premier première quelques plusieurs faire avoir notre votre "
        "vous je tu leurs",
        fragments="eau aient_ ais_ ait_ eux_ euse aux_ ée ées_ ement_ ette_ ille oi",
    ),
    _Profile(
        "es", "Latn", "áéíóúüñ",
        "de la que el en y a los del se las por un para con no una su al es lo como más pero sus le ya o "
        "fue este ha porque esta son entre cuando muy sin sobre también me hasta hay donde desde todo nos "
        "durante todos uno les ni contra otros ese eso ante ellos esto antes algunos unos otro otras otra "
        "él esa estos había fueron puede según está están ser sido tiene después muchas mucha tu tus mi mis "
        "te además así tras aún cada mismo misma hacia año años día vez solo sólo usted u dos tres gran "
        "nuevo nueva primer primera mientras aunque luego allí aquí ahora han haber hacer estaba eran "
        "podría debe pueden tienen hace muchos mayor parte",
        fragments="ción ciones_ ión_ dad_ dades_ aba_ aban_ ados_ idos_ ía_ ían_ mente_",
    ),
    _Profile(
        "pt", "Latn", "áâãàçéêíóôõú",
        "de a o que e do da em um para é com não uma os no se na por mais as dos como mas foi ao ele das "
        "tem à seu sua ou ser quando muito há nos já está eu também só pelo pela até isso ela entre era "
        "depois sem mesmo aos ter seus quem nas esse eles estão você essa nem suas num numa pelos elas "
        "havia seja será lhe este são foram após sobre pode ainda então assim cada onde porque dois três "
        "ano anos grande novo nova primeiro primeira muitos outras outros outro outra seria podem devem "
        "fazer estava eram durante contra embora enquanto aqui agora lá",
        fragments="ção ções ão_ ões_ nh lh dade_ dades_ ém_ ava_ avam_ mente_ ados_ idos_",
    ),
    _Profile(
        "it", "Latn", "àèéìíîòóùú",
        "di e il la che è per un in a non del una le i della con si da sono al lo dei gli nel come anche "
        "più ma alla ha questo delle nella o essere ci tra dalla dal se suo sua loro degli hanno era stato "
        "questa cui quando molto nei sul ancora dopo all' dell' nell' l' un' può fra ne mi ed sia alle "
        "dalle sulla sulle negli agli questi quello quella quelli perché però anni anno sempre tutto tutti "
        "tutte stata stati stesso due tre nuovo nuova primo prima mentre circa senza quindi già così oggi "
        "dove poi fatto viene vengono possono deve",
        fragments="zione zioni gli zz cch cci ggi ità_ ato_ ata_ ati_ are_ ere_ ire_ tto_ tti_ mente_",
    ),
    _Profile(
        "nl", "Latn", "éèëïóöü",
        "de van het een en in is dat op te zijn voor met die niet aan er om ook als bij door maar wordt "
        "worden naar uit dan nog of tot over ze hij was kan werd heeft zich meer deze dit hebben wel geen "
        "al wat zo nu wij ik hun veel haar waren onder tegen tussen omdat zou zal na toen twee drie jaar "
        "nieuwe eerste werden waar hoe alle andere zoals echter sinds volgens moet kunnen mijn jij je u ons "
        "onze hem zij men dus daar hier",
        fragments="ij oe uu aa sch cht ijk heid_",
    ),
    _Profile(
        "sv", "Latn", "åäöé",
        "och i att det som en på är av för med till den har de inte om ett han men var jag sig från vi så "
        "kan man när år säger hon under också efter eller nu sin där vid mot ska skulle kommer ut få finns "
        "vara hade alla andra mycket än här dem då sedan över bara blir upp även vad två dessa varit blev "
        "hans deras vilket",
        fragments="ade_ ande_ arna_ erna_ igt_ het_",
    ),
    _Profile(
        "da", "Latn", "æøåé",
        "og i at det en den til er som på de med han af for ikke der var jeg ved mig sig men et har om vi "
        "min havde ham hun nu over da fra du ud sin dem os op man hans hvor eller hvad skal selv her alle "
        "vil blev kunne ind når være noget ville deres efter ned skulle denne end dette også under have dig "
        "hende meget mod disse hvis nogle blive mange bliver været sådan siger findes kendt gennem mellem "
        "måske nogen tilbage igen lidt sidste",
        fragments="hed_ ede_ øj ej_",
    ),
    _Profile(
        "nb", "Latn", "æøåé",
        "og i jeg det at en et den til er som på de med han av ikke der så var vet meg seg men har om vi "
        "min ha hadde hun nå over da ved fra du ut sin dem oss opp man kan hans hvor eller hva skal selv "
        "her alle vil bli ble blitt kunne inn når være noen noe ville deres etter ned skulle denne for deg "
        "mot å dette disse uten hvordan ingen blir bare enn fordi før mange også slik vært henne sier mye "
        "finnes kjent gjennom mellom kanskje tilbake igjen litt siste",
        fragments="het_ øy ei_ gj kj skj",
    ),
    _Profile(
        "fi", "Latn", "äöå",
        "ja on ei se että hän oli ole kun mutta niin kuin myös tai jo sen ovat mitä tämä joka voi vain ne "
        "nyt jos kanssa sitä olla mukaan hänen jotka sekä vuonna noin olivat siitä aikana tässä joten koska "
        "vielä nämä kaikki mikä kuten sitten ennen jälkeen yli lisäksi paljon hyvin olisi minä me he",
        fragments="ää yy öö ssa_ ssä_ sta_ stä_ lla_ llä_ lle_ ksi_ nen_ inen_ uksen",
    ),
    _Profile(
        "pl", "Latn", "ąćęłńóśźż",
        "i w z na się nie do to że jest o jak co po ale od a za tak dla są przez by już tym tego jego ich "
        "jej czy także być może był była było oraz tylko który która które których przy pod ze we bardzo "
        "jako gdy tej ten tych też więc mnie jednak został została roku",
        fragments="cz rz prz szcz ych_ ów_ ego_ ami_ ach_",
    ),
    _Profile(
        "cs", "Latn", "áčďéěíňóřšťúůýž",
        "a se v na je že to s z o do i k ve jako pro by co ale jsou tak jeho za po od jsem který která "
        "které byl byla bylo být už jen když také není nebo aby jak tom ze jejich mezi při podle proti "
        "tento této tyto jsme má mají bude budou však ještě až",
        fragments="ní_ ou_ ství",
    ),
    _Profile(
        "sk", "Latn", "áäčďéíĺľňóôŕšťúýž",
        "a v sa na je že to s z o do i k vo ako pre by ale sú tak jeho za po od som ktorý ktorá ktoré bol "
        "bola bolo byť už len keď tiež nie alebo aby ich medzi pri podľa proti tento táto tieto sme má majú "
        "bude budú však ešte až",
    ),
    _Profile(
        "hu", "Latn", "áéíóöőúüű",
        "a az és hogy nem is egy meg de van ez csak már mint el még volt ki fel azt vagy ezt most kell sem "
        "lesz nagyon ha minden mert aki amely amelyek után között szerint majd pedig lehet óta alatt akkor "
        "ahol nincs nagy sok így ezzel valamint vannak voltak ő ők",
        fragments="gy zs cs nak_ nek_ ban_ ben_ ság ség ból ből ött_",
    ),
    _Profile(
        "ro", "Latn", "ăâîșțşţ",
        "și şi de în la a cu pe să nu că o din care un mai este au fost pentru se ca ce sunt al lui sau dar "
        "fi după prin acest această ei el ea cel cea va fie am are avea foarte despre între când încă doar "
        "numai unei unui cele cei ale acum până asupra deja",
        fragments="ului_ ilor_ ție ția ește ează",
    ),
    _Profile(
        "tr", "Latn", "çğıöşüâîû",
        "ve bir bu da de için ile olarak çok daha gibi olan ne ama kadar en o mi var ise sonra yok her "
        "değil ki ya veya şey göre ancak üzerinde tarafından olduğu oldu olduğunu büyük yeni iki ilk aynı "
        "zaman diye ben sen biz onun bunu şu bile hem çünkü yani kendi şimdi ayrıca arasında",
        fragments="lar_ ler_ ları leri yor nın nin dır dir_",
    ),
    _Profile(
        "id", "Latn", "",
        "yang dan di itu dengan untuk tidak ini dari dalam akan pada juga saya ke karena tersebut bisa ada "
        "mereka lebih kata tahun sudah atau saat oleh menjadi orang telah kami hanya bahwa adalah sebagai "
        "ia dia namun seperti masih banyak harus kita bagi setelah hingga antara sangat jika belum sejak "
        "yaitu serta para secara tetapi baru sedang dapat",
        fragments="kan_ nya_ _meng _peng _ber _ter",
    ),
    _Profile(
        "ms", "Latn", "",
        "yang dan di itu dengan untuk tidak ini dari dalam akan pada juga saya ke kerana tersebut boleh ada "
        "mereka lebih tahun sudah atau oleh menjadi orang telah kami hanya bahawa adalah ialah iaitu "
        "sebagai beliau namun seperti masih banyak kita bagi selepas hingga antara sangat jika belum sejak "
        "serta para secara tetapi baharu sedang daripada kepada sahaja",
        fragments="kan_ nya_ _meng _peng _ber _ter",
    ),
    _Profile(
        "vi", "Latn",
        "àáâãèéêìíòóôõùúýăđĩũơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ",
        "và của là có không được những một người các trong cho này với đã để khi đến về từ ông bà cũng như "
        "nhiều sẽ năm đó tại theo ra làm nhưng còn vào nó họ rằng thì lại chúng tôi bị nên sau phải mà trên "
        "hơn",
    ),
    _Profile(
        "ca", "Latn", "àçéèíïòóúü",
        "de la i el que a en les del per els amb un una es no és va com al més però dels seu seva també hi "
        "ha ho han són aquest aquesta o molt quan ja pel fins sobre entre des perquè sense on ser tot tots "
        "li després l' d' s' n' ara any anys era segons aquests aquestes això allò nou nova dos tres mentre "
        "encara sempre hem heu està estan fer tenir pot poden seus seves cap dins sota durant",
        fragments="ció_ cions_ tat_ tats_ ny_ ix_ aix eix l·l",
    ),
    _Profile(
        "gl", "Latn", "áéíóúñ",
        "de a o que e do da en un unha os as no na se non por para con co coa cos ao á ás dos das polo pola "
        "máis moi tamén como ser foi ten son este esta iso isto cando onde porque xa aínda sobre entre "
        "despois segundo uns unhas nin lle lles súa seu sen ou pero mais hai era eran moito moitos",
        fragments="xe xu xo ción_ cións_",
    ),
    _Profile(
        "hr", "Latn", "čćđšž",
        "i je u na da se su za od s a ne o što kao to iz koji koja koje bi će sa po ali ili bio bila bilo "
        "biti još samo nakon prema tijekom između kada također gdje ima",
    ),
    _Profile(
        "sl", "Latn", "čšž",
        "in je v na da se so za od s z a ne o kot to iz ki bi po ali pa bil bila bilo biti še samo tudi med "
        "kjer ima zelo lahko sem smo",
    ),
    _Profile(
        "et", "Latn", "äöõüšž",
        "ja on ei et see ka oli kui ta mis aga nii või kes mida seda olla tema siis veel nad pärast vastu "
        "ning üle juba kõik oma koos aasta",
    ),
    _Profile(
        "lt", "Latn", "ąčęėįšųūž",
        "ir yra kad į su iš ne o bet tai jis ji buvo kaip apie po už per dar kuris kuri nuo arba taip tik "
        "jau jie mes labai",
    ),
    _Profile(
        "lv", "Latn", "āčēģīķļņšūž",
        "un ir ka ar uz no par kā arī bet tas tā to vai bija viņš viņa kas pēc līdz jau tikai vēl mēs viņi "
        "ļoti gadā",
    ),
    _Profile(
        "sw", "Latn", "",
        "na ya wa kwa katika ni za la kuwa hiyo huo hii kama lakini pia au baada kutoka hadi wakati sana "
        "yake wao yeye sisi watu mwaka kwamba",
    ),
    _Profile(
        "fil", "Latn", "ñ",
        "ang ng sa mga na at ay si ni para kay hindi ito siya niya nila sila kanyang kung din rin noong "
        "mula tungkol dahil pero lamang",
    ),
    _Profile(
        "af", "Latn", "êëéïôû",
        "die en van in is het nie te wat om vir op met dat sy hy ek ons hulle was word deur ook aan maar "
        "sal kan as by na tot",
    ),
    _Profile(
        "ru", "Cyrl", "ёйщъыьэюяи",
        "и в не на что с он как это по но к из у за от о так же для его она был было были я мы они все "
        "только уже или если при бы также который которая которые после этот этого до есть",
    ),
    _Profile(
        "uk", "Cyrl", "йщьюяєіїґи",
        "і в у на не що з до як це за та від але його для про він вона був була було були вже також які "
        "який яка щоб після або коли ще тому є бути між під через",
    ),
    _Profile(
        "be", "Cyrl", "ёйьюяыэіў",
        "і ў у на не што з да як гэта па але ён яна быў была было былі ужо таксама які якая каб пасля або "
        "калі яшчэ таму ёсць паміж праз",
    ),
    _Profile(
        "bg", "Cyrl", "йщъьюяѝи",
        "и в на да се за от не е с че са по ще това като но към го му ги тя той те бил била било след при "
        "във със още който която които може ако или само вече между има",
    ),
    _Profile(
        "sr", "Cyrl", "ђјљњћџи",
        "и у на је да се за од не са што су из као али то он она био била било или који која које ће би "
        "због после већ још само када према",
    ),
    _Profile(
        "mk", "Cyrl", "ѓѕјљњќџи",
        "и во на да се за од не со што е ќе ги го тоа како но беше бил била кој која кои или по според меѓу "
        "само уште има сите тие тој таа",
    ),
    _Profile(
        "ar", "Arab", "يكةىأإؤئ",
        "في من على إلى أن التي الذي عن مع هذا هذه كان لا ما و أو بين كما قد ثم بعد عند حتى ذلك هو هي لم",
    ),
    _Profile(
        "fa", "Arab", "یکپچژگ",
        "و در به از که این را با است برای آن یک می ها شد بود کرد هم تا بر نیز شده خود او ما یا پس اما",
    ),
    _Profile(
        "ur", "Arab", "یکپچژگٹڈڑںےہھ",
        "کے میں کی ہے اور سے کو نے کا یہ پر ہیں تھا بھی ایک کہ تھے گیا کر ہو وہ لیے گئے",
    ),
    _Profile(
        "hi", "Deva", "",
        "है के में की और का को से यह पर हैं ने था भी एक कि थे गया कर हो वह लिए गए नहीं तो इस उन्होंने",
    ),
    _Profile(
        "mr", "Deva", "ळ",
        "आहे आणि या व हे ते की आहेत होते होता केले करण्यात म्हणून त्यांनी त्या असे मात्र आता",
    ),
    _Profile(
        "ne", "Deva", "",
        "छ र मा हो छन् यो पनि भएको गरेको भने थियो उनले गर्न हुन्छ उनी लागि तथा रहेको",
    ),
)  # fmt: skip

# Where a script's words and letters settle nothing, the language most texts in it are written in.
_SCRIPT_DEFAULT = {"Cyrl": "ru", "Arab": "ar", "Deva": "hi"}
_Weights = dict[str, dict[str, dict[str, float]]]
_FRAGMENT_GAIN = 0.4  # per occurrence of a fragment in a word that is not a frequent word itself
_LETTER_GAIN = 0.5  # per occurrence of a letter, shared among the languages whose alphabet has it
_LETTER_PENALTY = 1.0  # per occurrence of a letter the language's alphabet lacks
_MIN_SCORE = 1.0  # about one frequent word of the language's own
_MIN_WORDS = 2  # frequent words a text needs before one of the languages sharing its script is named
_MIN_MARGIN = 0.75  # between the best score and the runner-up's
_MIN_RATIO = 1.5  # a best score this many times the runner-up's needs only _MIN_RATIO_MARGIN
_MIN_RATIO_MARGIN = 0.3
_MIN_LETTERS = 3  # weighted letters below which nothing is decided
_MIN_SHARE = 0.6  # of the letters, in the main script; less is a mixed text
_MIN_KANA = 0.05  # share of kana among Han and kana that makes a text Japanese, not Chinese quoting kana


def _index() -> tuple[_Weights, _Weights, dict[str, dict[str, frozenset[str]]], dict[str, list[str]]]:
    """Per script: word -> {language: weight} and fragment -> {language: weight}, one shared by n languages
    weighing 1/n for each; letter -> the languages whose alphabet has it; and the languages."""
    # Dicts rather than sets keep the order of _PROFILES, so that scores add up the same way every run.
    words: dict[str, dict[str, dict[str, None]]] = {}
    fragments: dict[str, dict[str, dict[str, None]]] = {}
    letters: dict[str, dict[str, dict[str, None]]] = {}
    codes: dict[str, list[str]] = {}
    for profile in _PROFILES:
        codes.setdefault(profile.script, []).append(profile.code)
        for table, keys in (
            (words, profile.words.split()),
            (fragments, [fragment.replace("_", " ") for fragment in profile.fragments.split()]),
            (letters, list(profile.letters)),
        ):
            for key in keys:
                table.setdefault(profile.script, {}).setdefault(key, {})[profile.code] = None

    def weights(table: dict[str, dict[str, dict[str, None]]]) -> _Weights:
        return {
            script: {key: dict.fromkeys(holders, 1 / len(holders)) for key, holders in keys.items()}
            for script, keys in table.items()
        }

    letter_index = {
        script: {letter: frozenset(holders) for letter, holders in keys.items()}
        for script, keys in letters.items()
    }
    return weights(words), weights(fragments), letter_index, codes


_WORD_INDEX, _FRAGMENT_INDEX, _LETTER_INDEX, _SCRIPT_CODES = _index()


def _script_of(char: str) -> str | None:
    """The script of a letter (Han, kana and Hangul apart), None for anything else."""
    return _SCRIPT_RANGES[bisect_right(_RANGE_STARTS, ord(char)) - 1][1] if char >= "A" else None


def _prose(text: str) -> str:
    """The start of text with code and URLs taken out, NFC-normalized."""
    # Strip before cutting the sample, so that a long leading code block does not leave nothing to read.
    head = text[: 4 * _SAMPLE_CHARS]
    for pattern in (_CODE_FENCE, _INLINE_CODE, _URL):
        head = pattern.sub(" ", head)
    return unicodedata.normalize("NFC", head[:_SAMPLE_CHARS])


def detect_language(text: str) -> Language | None:
    """The language text is written in, or None when unsure (too short, mixed, no letters)."""
    # Python lowercases "İ" to "i" plus a combining dot, which no Turkish word in the profiles has.
    sample = _prose(text).replace("İ", "i").replace("’", "'").lower()
    chars = Counter(sample)
    by_script: Counter[str] = Counter()
    for char, count in chars.items():
        script = _script_of(char)
        if script is not None:
            by_script[script] += count * _SCRIPT_WEIGHT.get(script, 1)
    total = sum(by_script.values())
    if total < _MIN_LETTERS:
        return None
    groups = Counter({script: count for script, count in by_script.items() if script not in _CJK})
    groups["CJK"] = sum(by_script[script] for script in _CJK)
    main, count = groups.most_common(1)[0]
    if count < _MIN_SHARE * total:
        return None
    if main == "CJK":
        return _detect_cjk(by_script, chars)
    if main in _SCRIPT_LANGUAGE:
        return _LANGUAGES[_SCRIPT_LANGUAGE[main]]
    if main in _SCRIPT_CODES:
        return _detect_by_profiles(main, sample, chars)
    return None


def _detect_cjk(by_script: Counter[str], chars: Counter[str]) -> Language | None:
    """Japanese, Korean, or Simplified or Traditional Chinese."""
    kana, han, hangul = by_script["Kana"], by_script["Hani"], by_script["Hang"]
    if kana and kana >= _MIN_KANA * (kana + han) and kana >= hangul:
        return _LANGUAGES["ja"]
    if hangul > han:
        return _LANGUAGES["ko"]
    simplified = sum(chars[c] for c in _SIMPLIFIED)
    traditional = sum(chars[c] for c in _TRADITIONAL)
    if simplified == traditional:
        return None
    return _LANGUAGES["zh-Hans" if simplified > traditional else "zh-Hant"]


def _detect_by_profiles(script: str, sample: str, chars: Counter[str]) -> Language | None:
    """The language of a text in a script several languages share, by frequent words and letters."""
    scores, words = _scores(script, sample, chars)
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    (best, top), (_, runner_up) = ranked[0], ranked[1]
    margin = top - runner_up
    clear = margin >= _MIN_MARGIN or (margin >= _MIN_RATIO_MARGIN and top >= _MIN_RATIO * runner_up)
    if words >= _MIN_WORDS and top >= _MIN_SCORE and clear:
        return _LANGUAGES[best]
    default = _SCRIPT_DEFAULT.get(script)
    if default is not None and scores[default] >= top:
        return _LANGUAGES[default]
    return None


def _scores(script: str, sample: str, chars: Counter[str]) -> tuple[dict[str, float], int]:
    """Each language's score for a text in script (its frequent words and fragments of other words, plus
    its letters, minus the letters its alphabet lacks), and how many frequent words the text has."""
    codes = _SCRIPT_CODES[script]
    scores = dict.fromkeys(codes, 0.0)
    index = _WORD_INDEX.get(script, {})
    others = []
    found = 0
    for word in _WORD.findall(sample):
        hits = index.get(word)
        if hits is None and word.endswith("'"):
            hits = index.get(word[:-1])
        if hits is None:
            others.append(word)
            continue
        found += 1
        for code, weight in hits.items():
            scores[code] += weight
    # Spaces around every word, so that a fragment's "_" (now a space) matches only at a word's edge.
    text = f" {'  '.join(others)} "
    for fragment, hits in _FRAGMENT_INDEX.get(script, {}).items():
        count = text.count(fragment)
        if count:
            for code, weight in hits.items():
                scores[code] += _FRAGMENT_GAIN * weight * count
    for letter, holders in _LETTER_INDEX.get(script, {}).items():
        count = chars.get(letter, 0)
        if count:
            gain = _LETTER_GAIN * count / len(holders)
            for code in codes:
                scores[code] += gain if code in holders else -_LETTER_PENALTY * count
    return scores, found
