"""`make demo` (`python -m demo`): the real bot between the fake Bot API and the fake Kie.ai of
the tests (testkit/fakes), and a chat page at http://127.0.0.1:8088/ to talk to it as a person or
as the admin. No token, no network: everything listens on 127.0.0.1.

runner.py starts and stops it all, page.py serves the chat page, render.py turns a Telegram
message into what the page shows, media.py is what the fake Kie.ai delivers."""
