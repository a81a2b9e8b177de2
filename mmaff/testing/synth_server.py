"""A loopback OpenAI-compatible ``/v1/chat/completions`` server for the synthetic-corpus pipeline's tests and
`make synth-smoke`: answers from a seeded table of texts in six languages and four scripts (en, de, ru, hi, ja,
ar), chosen by the SHA-256 of the request's messages, so the same request always gets the same answer.

Generation requests (their prompt names "Target language: ... (xx)" and "Emotions to express: ...") get, by the
hash: a malformed JSON answer, a refusal in prose, an HTTP 400 refusal, a text in the wrong language, a text that
names its emotion (leaking), one fixed text per language (exact duplicates), a small variation of another fixed
text (near duplicates), or a normal text made of an opener, one phrase per planned emotion and a closer. Judge
requests (text between ``<<<`` and ``>>>``) get the emotions whose phrases the text contains, one dropped for
every tenth text. The very first request is answered 429 and the second 500 (the client must retry).

    with SynthServer() as server:  # server.url is the /v1 base URL
        ...
    python -m mmaff.testing.synth_server -- python -m mmaff.synth --base-url {url} ...   # a command with it up
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

EMOTIONS = ("joy", "sadness", "anger", "fear", "surprise", "disgust", "love", "gratitude", "frustration", "contempt")
# per language: openers, one phrase per emotion (+ neutral), closers, and each emotion's name (for leaking answers)
TABLE: dict[str, dict[str, Any]] = {
    "en": {
        "openers": [
            "This morning at the bus stop,",
            "Yesterday after work,",
            "On Sunday at my aunt's house,",
            "Last night in the kitchen,",
            "During the lunch break today,",
        ],
        "phrases": {
            "joy": "I could not stop smiling and dancing around the room",
            "sadness": "I sat alone for hours and my eyes would not stay dry",
            "anger": "I slammed the door so hard that the windows shook",
            "fear": "my hands were shaking and my heart was pounding in the dark",
            "surprise": "I never expected that, my jaw literally dropped",
            "disgust": "the smell from that fridge made me want to throw up",
            "love": "I held her hand and wished the moment would never end",
            "gratitude": "I want to thank my neighbour a thousand times for the help",
            "frustration": "the printer jammed for the fifth time and nothing worked",
            "contempt": "those people think they are better than everyone, how pathetic",
            "neutral": "the train left at nine and arrived at the station on time",
        },
        "closers": [
            "That is all for now.",
            "We will see tomorrow.",
            "Back to the usual routine.",
            "Anyway, off to bed.",
        ],
        "names": {
            "joy": "joy",
            "sadness": "sadness",
            "anger": "anger",
            "fear": "fear",
            "surprise": "surprise",
            "disgust": "disgust",
            "love": "love",
            "gratitude": "gratitude",
            "frustration": "frustration",
            "contempt": "contempt",
        },
    },
    "de": {
        "openers": [
            "Heute Morgen an der Haltestelle",
            "Gestern nach der Arbeit",
            "Am Sonntag bei meiner Tante",
            "Letzte Nacht in der Küche",
            "In der Mittagspause heute",
        ],
        "phrases": {
            "joy": "konnte ich gar nicht aufhören zu lächeln und durch das Zimmer zu tanzen",
            "sadness": "saß ich stundenlang allein und meine Augen wurden einfach nicht trocken",
            "anger": "habe ich die Tür so fest zugeschlagen, dass die Fenster wackelten",
            "fear": "zitterten meine Hände und mein Herz raste in der Dunkelheit",
            "surprise": "hätte ich das nie erwartet, mir ist wirklich die Kinnlade runtergefallen",
            "disgust": "hat mich der Gestank aus dem Kühlschrank fast zum Würgen gebracht",
            "love": "hielt ich ihre Hand und wünschte, dieser Moment würde nie enden",
            "gratitude": "möchte ich meinem Nachbarn tausendmal für seine Hilfe danken",
            "frustration": "hat der Drucker zum fünften Mal gestreikt und gar nichts ging mehr",
            "contempt": "halten sich diese Leute für etwas Besseres, einfach erbärmlich",
            "neutral": "fuhr der Zug um neun Uhr ab und kam pünktlich am Bahnhof an",
        },
        "closers": [
            "Das war es für heute.",
            "Mal sehen, was morgen kommt.",
            "Jetzt wieder der Alltag.",
            "Jetzt geht es ins Bett.",
        ],
        "names": {
            "joy": "Freude",
            "sadness": "Traurigkeit",
            "anger": "Wut",
            "fear": "Angst",
            "surprise": "Überraschung",
            "disgust": "Ekel",
            "love": "Liebe",
            "gratitude": "Dankbarkeit",
            "frustration": "Frust",
            "contempt": "Verachtung",
        },
    },
    "ru": {
        "openers": [
            "Сегодня утром на остановке",
            "Вчера после работы",
            "В воскресенье у тёти дома",
            "Прошлой ночью на кухне",
            "Сегодня в обеденный перерыв",
        ],
        "phrases": {
            "joy": "я не мог перестать улыбаться и танцевал по всей комнате",
            "sadness": "я сидел один несколько часов, и слёзы всё никак не высыхали",
            "anger": "я так хлопнул дверью, что задрожали окна",
            "fear": "у меня тряслись руки, а сердце колотилось в темноте",
            "surprise": "я никак этого не ожидал, у меня просто отвисла челюсть",
            "disgust": "от запаха из холодильника меня чуть не вывернуло",
            "love": "я держал её за руку и хотел, чтобы этот миг никогда не кончался",
            "gratitude": "хочу тысячу раз сказать соседу спасибо за помощь",
            "frustration": "принтер зажевал бумагу уже в пятый раз, и ничего не работало",
            "contempt": "эти люди считают себя лучше всех, как это жалко",
            "neutral": "поезд отправился в девять часов и прибыл на вокзал вовремя",
        },
        "closers": ["На сегодня всё.", "Посмотрим, что будет завтра.", "Снова обычные дела.", "Пора спать."],
        "names": {
            "joy": "радость",
            "sadness": "грусть",
            "anger": "гнев",
            "fear": "страх",
            "surprise": "удивление",
            "disgust": "отвращение",
            "love": "любовь",
            "gratitude": "благодарность",
            "frustration": "досада",
            "contempt": "презрение",
        },
    },
    "hi": {
        "openers": [
            "आज सुबह बस स्टॉप पर",
            "कल काम के बाद",
            "रविवार को मौसी के घर पर",
            "कल रात रसोई में",
            "आज दोपहर के खाने के समय",
        ],
        "phrases": {
            "joy": "मैं मुस्कुराना बंद नहीं कर पाया और पूरे कमरे में नाचता रहा",
            "sadness": "मैं घंटों अकेला बैठा रहा और मेरी आँखें सूख ही नहीं रही थीं",
            "anger": "मैंने दरवाज़ा इतनी ज़ोर से पटका कि खिड़कियाँ हिल गईं",
            "fear": "मेरे हाथ काँप रहे थे और अंधेरे में दिल ज़ोर से धड़क रहा था",
            "surprise": "मैंने ऐसा बिल्कुल नहीं सोचा था, मेरा मुँह खुला का खुला रह गया",
            "disgust": "फ्रिज से आती बदबू से मुझे उल्टी जैसा लगने लगा",
            "love": "मैंने उसका हाथ थामा और चाहा कि यह पल कभी खत्म न हो",
            "gratitude": "मैं पड़ोसी को उनकी मदद के लिए हज़ार बार धन्यवाद कहना चाहता हूँ",
            "frustration": "प्रिंटर पाँचवीं बार अटक गया और कुछ भी काम नहीं कर रहा था",
            "contempt": "ये लोग खुद को सबसे ऊपर समझते हैं, कितनी घटिया सोच है",
            "neutral": "ट्रेन नौ बजे चली और समय पर स्टेशन पहुँच गई",
        },
        "closers": ["आज के लिए इतना ही।", "देखते हैं कल क्या होता है।", "फिर से वही रोज़ का काम।", "अब सोने चलता हूँ।"],
        "names": {
            "joy": "खुशी",
            "sadness": "उदासी",
            "anger": "गुस्सा",
            "fear": "डर",
            "surprise": "आश्चर्य",
            "disgust": "घृणा",
            "love": "प्यार",
            "gratitude": "कृतज्ञता",
            "frustration": "हताशा",
            "contempt": "तिरस्कार",
        },
    },
    "ja": {
        "openers": [
            "今朝バス停で、",
            "昨日の仕事のあと、",
            "日曜日におばさんの家で、",
            "昨夜台所で、",
            "今日の昼休みに、",
        ],
        "phrases": {
            "joy": "笑顔が止まらなくて部屋中を踊り回った",
            "sadness": "何時間も一人で座っていて涙が止まらなかった",
            "anger": "窓が揺れるほど強くドアを閉めてしまった",
            "fear": "暗闇の中で手が震えて心臓がどきどきしていた",
            "surprise": "まさかそんなことになるとは思わず、口が開いたままだった",
            "disgust": "冷蔵庫からのにおいで吐きそうになった",
            "love": "彼女の手を握って、この時間がずっと続けばいいと思った",
            "gratitude": "助けてくれた隣の人に何度でもお礼を言いたい",
            "frustration": "プリンターがまた五回目の紙詰まりで、何もできなかった",
            "contempt": "あの人たちは自分が一番偉いと思っている、本当に情けない",
            "neutral": "電車は九時に出発して、時間どおりに駅に着いた",
        },
        "closers": ["今日はここまで。", "明日はどうなるかな。", "またいつもの毎日だ。", "もう寝よう。"],
        "names": {
            "joy": "喜び",
            "sadness": "悲しみ",
            "anger": "怒り",
            "fear": "恐怖",
            "surprise": "驚き",
            "disgust": "嫌悪",
            "love": "愛",
            "gratitude": "感謝",
            "frustration": "苛立ち",
            "contempt": "軽蔑",
        },
    },
    "ar": {
        "openers": [
            "هذا الصباح في موقف الحافلات",
            "أمس بعد العمل",
            "يوم الأحد في بيت خالتي",
            "الليلة الماضية في المطبخ",
            "اليوم في استراحة الغداء",
        ],
        "phrases": {
            "joy": "لم أستطع التوقف عن الابتسام ورقصت في أرجاء الغرفة",
            "sadness": "جلست وحدي لساعات ولم تجف دموعي أبدا",
            "anger": "أغلقت الباب بقوة حتى اهتزت النوافذ",
            "fear": "كانت يداي ترتجفان وقلبي يخفق بشدة في الظلام",
            "surprise": "لم أتوقع ذلك أبدا، بقي فمي مفتوحا من الدهشة",
            "disgust": "الرائحة القادمة من الثلاجة جعلتني أشعر بالغثيان",
            "love": "أمسكت يدها وتمنيت ألا تنتهي هذه اللحظة أبدا",
            "gratitude": "أريد أن أشكر جاري ألف مرة على مساعدته",
            "frustration": "علقت الطابعة للمرة الخامسة ولم يعمل أي شيء",
            "contempt": "هؤلاء الناس يظنون أنهم أفضل من الجميع، يا له من تفكير تافه",
            "neutral": "غادر القطار في الساعة التاسعة ووصل إلى المحطة في الموعد",
        },
        "closers": ["هذا كل شيء لليوم.", "لنرى ماذا سيحدث غدا.", "نعود إلى الروتين المعتاد.", "حان وقت النوم."],
        "names": {
            "joy": "الفرح",
            "sadness": "الحزن",
            "anger": "الغضب",
            "fear": "الخوف",
            "surprise": "المفاجأة",
            "disgust": "الاشمئزاز",
            "love": "الحب",
            "gratitude": "الامتنان",
            "frustration": "الإحباط",
            "contempt": "الاحتقار",
        },
    },
}
LANGUAGES = tuple(TABLE)
NO_SPACE = frozenset({"ja"})
REFUSAL = "I'm sorry, but I can't help with that request."
_TARGET = re.compile(r"Target language: .*\(([a-z]{2})\)")
_EMOTIONS = re.compile(r"Emotions to express: (.*)")
_JUDGED = re.compile(r"<<<\n(.*)\n>>>", re.DOTALL)


def _join(language: str, parts: list[str]) -> str:
    if language in NO_SPACE:
        return "".join(parts)
    if language == "en":
        return " ".join(parts[:-1]) + ". " + parts[-1]
    return ", ".join(parts[:-1]) + ". " + parts[-1]


def compose(language: str, emotions: list[str], digest: int) -> str:
    """A text of the table expressing `emotions` (neutral when empty); `digest` picks opener and closer."""
    table = TABLE[language]
    phrases = [table["phrases"][e] for e in emotions] or [table["phrases"]["neutral"]]
    glue = "、" if language in NO_SPACE else (" and " if language == "en" else ", ")
    body = glue.join(phrases)
    opener = table["openers"][digest % len(table["openers"])]
    closer = table["closers"][(digest // 7) % len(table["closers"])]
    if language in NO_SPACE:
        return opener + body + "。" + closer
    return _join(language, [opener, body, closer])


def generation_answer(prompt: str, digest: int) -> tuple[int, str]:
    """(HTTP status, answer content) for a generation prompt."""
    target = _TARGET.search(prompt)
    language = target.group(1) if target and target.group(1) in TABLE else "en"
    named = _EMOTIONS.search(prompt)
    emotions = [e for e in (named.group(1).split(", ") if named else []) if e in EMOTIONS]
    bucket = digest % 100
    if bucket < 4:
        return 200, '{"text": "' + compose(language, emotions, digest)[:20]
    if bucket < 7:
        return 200, REFUSAL
    if bucket < 9:
        return 400, "The prompt was flagged by the content policy."
    if bucket < 15:  # the wrong language: the next one of the table
        other = LANGUAGES[(LANGUAGES.index(language) + 1) % len(LANGUAGES)]
        return 200, json.dumps({"text": compose(other, emotions, digest)}, ensure_ascii=False)
    if bucket < 20 and emotions:
        leak = TABLE[language]["names"][emotions[0]]
        text = compose(language, emotions, digest)
        return 200, json.dumps(
            {"text": f"{text} {leak}!" if language not in NO_SPACE else text + leak}, ensure_ascii=False
        )
    if bucket < 23:
        return 200, json.dumps({"text": compose(language, ["gratitude"], 0)}, ensure_ascii=False)
    if bucket < 26:
        variant = (" (1)", " (2)", " (3)")[digest % 3]  # a repost counter: one small edit
        return 200, json.dumps({"text": compose(language, ["surprise"], 1) + variant}, ensure_ascii=False)
    return 200, json.dumps({"text": compose(language, emotions, digest)}, ensure_ascii=False)


def judge_answer(prompt: str) -> str:
    text = _JUDGED.search(prompt).group(1)
    found = [e for e in EMOTIONS if any(t["phrases"][e] in text for t in TABLE.values())]
    if found and int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 10 == 0:
        found = found[:-1]
    return json.dumps({"emotions": found})


class SynthServer:
    """Start/stop as a context manager; `url` is the /v1 base URL; `requests` counts the requests served."""

    def __init__(self, fail_first: bool = True, delay: float = 0.0) -> None:
        self.requests, self.delay = 0, delay  # delay: seconds before each answer (a run to kill mid-way)
        self._fail = ["429", "500"] if fail_first else []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> SynthServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next_failure(self) -> str | None:
        with self._lock:
            self.requests += 1
            return self._fail.pop(0) if self._fail else None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client was killed mid-request (a test's kill -9)
                    pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                failure = server._next_failure()
                if failure is not None:
                    status = int(failure)
                    self._send(status, {"error": {"message": f"loopback {status}"}}, {"retry-after-ms": "10"})
                    return
                prompt = request["messages"][-1]["content"]
                time.sleep(server.delay)
                digest = int(hashlib.sha256(json.dumps(request["messages"]).encode()).hexdigest()[:12], 16)
                if _JUDGED.search(prompt):
                    status, content = 200, judge_answer(prompt)
                else:
                    status, content = generation_answer(prompt, digest)
                if status != 200:
                    self._send(status, {"error": {"message": content}})
                    return
                usage = {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(content) // 4}
                usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{digest:x}",
                        "object": "chat.completion",
                        "created": 0,
                        "model": request.get("model", "loopback"),
                        "choices": [
                            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
                        ],
                        "usage": usage,
                    },
                )

        return Handler


def main(argv: list[str] | None = None) -> int:
    """Run a command (after ``--``) with the server up, ``{url}`` in it replaced by the server's /v1 URL."""
    args = sys.argv[1:] if argv is None else argv
    command = args[args.index("--") + 1 :] if "--" in args else []
    if not command:
        print("error: usage: python -m mmaff.testing.synth_server -- COMMAND ... {url} ...", file=sys.stderr)
        return 2
    with SynthServer() as server:
        return subprocess.call([part.replace("{url}", server.url) for part in command])


if __name__ == "__main__":
    raise SystemExit(main())
