"""The words of the shipped catalog file that are message ids: option titles, choice labels
and model names made of words. Marked here so that `pybabel extract` (and tests/unit/
test_locales.py) finds them; locales/*.po translate them, and the picker and /models show them
translated. A title or label the file has and this list has not is shown as it is written."""

from bot.i18n import N_

WORDS = (
    N_("Aspect ratio"), N_("Number of images"), N_("As the photo"), N_("Duration"),
    N_("Orientation"), N_("Landscape"), N_("Portrait"), N_("Resolution"), N_("Vocals"),
    N_("With vocals"), N_("Instrumental"), N_("Voice"), N_("ElevenLabs speech"), N_("Quality"),
    N_("Medium"), N_("High"), N_("Sound"), N_("Without sound"), N_("With sound"),
)
