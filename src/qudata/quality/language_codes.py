"""Language codes to ISO 639-1: language tags, three-letter codes and macro-languages.

:func:`iso639_1` applies, in order:

1. A language tag is cut to its language (``zh-Hant-TW``, ``pt_BR`` -> ``zh``, ``pt``),
   lower-cased; the withdrawn codes ``iw``, ``in``, ``ji``, ``jw``, ``mo`` become ``he``,
   ``id``, ``yi``, ``jv``, ``ro``.
2. An ISO 639-2 code (bibliographic or terminological) of a language that has an
   ISO 639-1 code becomes it (``eng``, ``deu``, ``ger`` -> ``en``, ``de``).
3. An ISO 639-3 individual language that belongs to a macro-language with an ISO 639-1
   code becomes the macro-language (:data:`MACRO_MEMBERS`): Mandarin, Wu, Cantonese, Gan,
   Hakka, Min Nan ... -> ``zh``; Egyptian, Moroccan ... Arabic -> ``ar``; Iranian and Dari
   Persian -> ``fa``; Standard Malay -> ``ms``; Latgalian -> ``lv``; Southern Kurdish ->
   ``ku``; Southern Uzbek -> ``uz``; Nigerian Fulfulde -> ``ff``; Paraguayan Guarani ->
   ``gn``. (Norwegian Bokmal and Nynorsk keep their own ``nb`` and ``nn``.)
4. Anything else is kept: a language with no ISO 639-1 code keeps its ISO 639-3 code
   (``grc`` Ancient Greek, ``hbo`` Ancient Hebrew, ``kab`` Kabyle, ``pcm`` Nigerian
   Pidgin, ``gom`` Konkani), and ``und`` / ``zxx`` stay.

    >>> [iso639_1(c) for c in ("wuu", "yue", "zh-Hant-TW", "ger", "arz", "kab")]
    ['zh', 'zh', 'zh', 'de', 'ar', 'kab']
"""

from __future__ import annotations

__all__ = ["MACRO_MEMBERS", "iso639_1"]

# ISO 639-1 code, its ISO 639-2/T code and, where it differs, its 639-2/B code
_ISO639_2 = """
aa aar|ab abk|af afr|ak aka|am amh|an arg|ar ara|as asm|av ava|ay aym|az aze|ba bak
be bel|bg bul|bi bis|bm bam|bn ben|bo bod tib|br bre|bs bos|ca cat|ce che|ch cha|co cos
cr cre|cs ces cze|cu chu|cv chv|cy cym wel|da dan|de deu ger|dv div|dz dzo|ee ewe
el ell gre|en eng|eo epo|es spa|et est|eu eus baq|fa fas per|ff ful|fi fin|fj fij
fo fao|fr fra fre|fy fry|ga gle|gd gla|gl glg|gn grn|gu guj|gv glv|ha hau|he heb
hi hin|ho hmo|hr hrv|ht hat|hu hun|hy hye arm|hz her|ia ina|id ind|ie ile|ig ibo
ii iii|ik ipk|io ido|is isl ice|it ita|iu iku|ja jpn|jv jav|ka kat geo|kg kon|ki kik
kj kua|kk kaz|kl kal|km khm|kn kan|ko kor|kr kau|ks kas|ku kur|kv kom|kw cor|ky kir
la lat|lb ltz|lg lug|li lim|ln lin|lo lao|lt lit|lu lub|lv lav|mg mlg|mh mah
mi mri mao|mk mkd mac|ml mal|mn mon|mr mar|ms msa may|mt mlt|my mya bur|na nau|nb nob
nd nde|ne nep|ng ndo|nl nld dut|nn nno|no nor|nr nbl|nv nav|ny nya|oc oci|oj oji
om orm|or ori|os oss|pa pan|pi pli|pl pol|ps pus|pt por|qu que|rm roh|rn run
ro ron rum|ru rus|rw kin|sa san|sc srd|sd snd|se sme|sg sag|si sin|sk slk slo|sl slv
sm smo|sn sna|so som|sq sqi alb|sr srp|ss ssw|st sot|su sun|sv swe|sw swa|ta tam
te tel|tg tgk|th tha|ti tir|tk tuk|tl tgl|tn tsn|to ton|tr tur|ts tso|tt tat|tw twi
ty tah|ug uig|uk ukr|ur urd|uz uzb|ve ven|vi vie|vo vol|wa wln|wo wol|xh xho|yi yid
yo yor|za zha|zh zho chi|zu zul
"""

#: ISO 639-1 code of a macro-language -> the ISO 639-3 codes of its member languages
#: that language identifiers and datasets use.
MACRO_MEMBERS: dict[str, tuple[str, ...]] = {
    "zh": ("cmn", "wuu", "yue", "gan", "hak", "nan", "hsn", "cjy", "cdo", "cpx", "czh",
           "czo", "mnp", "lzh", "cnp", "csp"),
    "ar": ("arb", "ary", "arz", "acm", "acq", "acw", "acx", "acy", "adf", "aeb", "aec",
           "afb", "ajp", "apc", "apd", "arq", "ars", "auz", "avl", "ayh", "ayl", "ayn",
           "ayp", "pga", "shu", "ssh", "abh", "abv"),
    "fa": ("pes", "prs"),
    "ms": ("zsm", "zlm"),
    "sw": ("swh", "swc"),
    "et": ("ekk",),
    "lv": ("lvs", "ltg"),
    "uz": ("uzn", "uzs"),
    "sq": ("als", "aln", "aae", "aat"),
    "az": ("azj", "azb"),
    "ku": ("kmr", "ckb", "sdh", "lki"),
    "ps": ("pbt", "pbu", "pst"),
    "mn": ("khk", "mvf"),
    "ne": ("npi",),
    "om": ("gax", "gaz", "hae", "orc"),
    "or": ("ory",),
    "ff": ("fuv", "fub", "fuc", "fue", "fuf", "fuh", "fui", "fuq", "ffm"),
    "gn": ("gug", "gui", "gun", "nhd"),
    "yi": ("ydd", "yih"),
    "kv": ("koi", "kpv"),
    "sc": ("sro", "src", "sdc", "sdn"),
    "qu": ("quz", "quy", "qub", "qug", "qvi", "qxp"),
    "mg": ("plt", "xmv", "bhr", "msh", "tdx", "txy", "skg", "bmm", "bzc", "tkg", "xmw"),
}  # fmt: skip

_WITHDRAWN = {"iw": "he", "in": "id", "ji": "yi", "jw": "jv", "mo": "ro"}

_TO_ISO639_1: dict[str, str] = {
    **{
        three: entry.split()[0]
        for entry in _ISO639_2.replace("\n", "|").split("|")
        if entry.strip()
        for three in entry.split()[1:]
    },
    **{member: macro for macro, members in MACRO_MEMBERS.items() for member in members},
}


def iso639_1(code: str) -> str:
    """``code`` (a language tag or ISO 639 code) as ISO 639-1 where there is one
    (see the module's rules); other codes lower-cased and kept."""
    language = code.strip().lower().replace("_", "-").split("-", 1)[0]
    if len(language) == 2:
        return _WITHDRAWN.get(language, language)
    return _TO_ISO639_1.get(language, language)
