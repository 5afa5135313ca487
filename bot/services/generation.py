"""Starting generations: the picker's drafts, the charge, and handing the task to Kie.ai."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from typing import Any

from bot import texts
from bot.catalog import Model, Offer, get_model
from bot.config import KieSettings
from bot.errors import BotError, Refusal
from bot.i18n import N_
from bot.kie import KieClient
from bot.kie.errors import (
    KieAuthError,
    KieError,
    KieInsufficientCredits,
    KieKeyCapped,
    KieModelDisabled,
    KieValidationError,
)
from bot.services.callback_url import CallbackUrls
from bot.services.delivery import kie_keeps
from bot.services.follow_ups import source_of
from bot.services.keys import retire_refused_key
from bot.services.notifier import Notifier
from bot.services.offers import HIDDEN_BY_KIE, current_offer, offer_of
from bot.services.pictures import PictureError, Pictures
from bot.services.schedule import Schedule
from bot.store import (
    DRAFT_LIFETIME,
    Draft,
    DraftChanged,
    DraftClosed,
    FollowUpOpen,
    Generation,
    GenerationState,
    InsufficientCredits,
    LimitReached,
    StartLimits,
    Store,
)

log = logging.getLogger(__name__)


class LeaseLost(BotError):
    """This instance no longer holds a generation it was working on (Store.fence_create)."""


class PickerError(Refusal):
    """A press the picker refuses; shown as the press's alert."""


LIMIT_MESSAGES = {
    "open": N_("You already have as many generations running as one person may. "
               "Wait for one to finish."),
    "rate": N_("You have started too many generations in the last minute. Wait a little."),
}


@dataclass(frozen=True)
class Picker:
    """What a picker message shows now: the model list (model None) or one model's options,
    resolved once for the text, the keyboard and the price its ✅ promises."""

    draft: Draft
    model: Model | None
    models: list[Model]
    too_long: list[Model] = field(default_factory=list)  # not offered: the prompt is longer
    improve_price: int | None = None  # ✨ Improve's (PROMPT_IMPROVE_PRICE); None: not offered

    @cached_property
    def choices(self) -> dict[str, Any]:
        """The draft's options completed with the model's defaults ({} without a model)."""
        return self.model.resolve(self.draft.options) if self.model else {}

    @cached_property
    def price(self) -> int:
        return self.model.price_for(self.choices) if self.model else 0


class ShortOfCredits(PickerError):
    """✅ that the balance cannot pay: nothing charged. `cheaper`: the best model of the same
    kind the balance pays (at its default options), if one is offered. A follow-up (⬆️ ➕) has
    no draft."""

    def __init__(self, draft: Draft | None, price: int, balance: int, cheaper: Model | None) -> None:
        super().__init__("not enough credits")
        self.draft, self.price, self.balance, self.cheaper = draft, price, balance, cheaper

    def text(self, translate: Callable[[str], str]) -> str:
        return texts.not_enough(self.price, self.balance)  # in the current locale, as translate


class PickerChanged(PickerError):
    """✅ was pressed on a keyboard older than the draft: nothing is charged; show `picker`."""

    def __init__(self, picker: Picker) -> None:
        super().__init__(N_("The choice changed before your press arrived. Check it and press ✅ again."))
        self.picker = picker


class PriceChanged(PickerError):
    """A follow-up's button showed another price than it costs now: nothing is charged."""

    def __init__(self, price: int) -> None:
        super().__init__(N_("The price changed before your press arrived: it is {credits} now."),
                         credits=texts.credits(price))
        self.price = price


# A follow-up of a result Kie no longer keeps (its URL, or Suno's track, is gone).
RESULT_GONE = N_("This result is too old: Kie.ai no longer keeps its file. Nothing was charged.")


class Generations:
    def __init__(self, store: Store, *, kie: KieClient, pictures: Pictures, notifier: Notifier,
                 kie_settings: KieSettings, limits: StartLimits,
                 callback_urls: CallbackUrls | None, schedule: Schedule,
                 wake_tracker: Callable[[], None], improve_price: int | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.kie = kie
        self.pictures = pictures
        self.notifier = notifier
        self.kie_settings = kie_settings
        self.limits = limits  # MAX_OPEN_GENERATIONS, MAX_STARTS_PER_MINUTE
        self.callback_urls = callback_urls
        self.schedule = schedule
        self.wake_tracker = wake_tracker
        self.improve_price = improve_price  # on every picker it draws (services/improve.py)
        self._clock = clock
        self._submits: set[asyncio.Task[None]] = set()

    async def open(self, *, user_id: int, chat_id: int, request_message_id: int | None,
                   kind: str, prompt: str, picture: str | None = None,
                   model: Model | None = None, options: dict[str, str] | None = None,
                   remembered: bool = True) -> Picker:
        """A new picker. `picture` (a Telegram file id) limits it to the models that take one.
        Without `model` it opens on the person's last choice of this kind where that is still
        offered and `remembered` (a repeat is one tap), else on the model list."""
        offer = await current_offer(self.store)
        models, too_long = _offered(offer, kind, prompt, picture=picture is not None)
        if not models:
            if too_long:
                raise Refusal(N_("The prompt is {length} characters long; the models here take "
                                 "up to {limit}. Shorten it and send it again."),
                              length=len(prompt), limit=max(m.max_prompt for m in too_long))
            raise Refusal(N_("No model here takes a picture as input. Send the command without one.")
                          if picture else N_("No model is available right now. Try again later."))
        last = await self.store.choice(user_id, kind) if model is None and remembered else None
        if last is not None:
            entry = offer.model(last[0])
            model = next((m for m in models if entry and m.entry == entry.entry), None)
            options = last[1]
        elif model is not None:  # 🔁 Again: as offered now (its price, or gone)
            model = next((m for m in models if m.id == model.id), None)
        if model is None and len(models) == 1:  # nothing to choose: straight to the options
            model = models[0]
        draft = await self.store.create_draft(
            user_id=user_id, chat_id=chat_id, request_message_id=request_message_id, kind=kind,
            prompt=prompt, model=model.id if model else None,
            options=model.resolve(options or {}) if model else None, picture=picture)
        return self._picker(draft, model, models, too_long)

    async def press(self, draft_id: int, user_id: int, act: str, value: str) -> Picker | None:
        """Apply a picker press; None when the draft is closed (cancel)."""
        draft, offer = await self._owned(draft_id, user_id)
        models, too_long = _offered_for(offer, draft)
        model = offer.model(draft.model)
        try:
            if act == "x":
                await self.store.cancel_draft(draft.id)
                return None
            if act == "back":
                draft = await self.store.update_draft(draft.id, model=None, options={})
                model = None
            elif act == "m":
                model = offer.model(value)
                if model is None or model not in models:
                    raise PickerError(N_("This model is no longer available."))
                draft = await self.store.update_draft(draft.id, model=model.id,
                                                      options=model.defaults())
            elif act == "o" and model is not None:
                key, _, index = value.partition(".")
                option = next((o for o in model.options if o.key == key), None)
                if option is None or not index.isdigit() or int(index) >= len(option.choices):
                    raise PickerError(N_("This option is no longer available."))
                options = {**model.resolve(draft.options), key: option.choices[int(index)].value}
                draft = await self.store.update_draft(draft.id, model=model.id, options=options)
            else:
                raise PickerError(texts.OUTDATED)
        except DraftClosed:
            raise PickerError(N_("This request was already sent or cancelled.")) from None
        return self._picker(draft, model, models, too_long)

    async def short_picker(self, user_id: int) -> Picker | None:
        """After a purchase: the person's newest live picker whose ✅ found too few credits,
        once (Store.short_draft), to be offered again."""
        draft = await self.store.short_draft(user_id, since=self._clock() - DRAFT_LIFETIME)
        if draft is None:
            return None
        return await self.picker(draft)

    async def picker(self, draft: Draft) -> Picker:
        """What the picker of `draft` shows now."""
        offer = await current_offer(self.store)
        return self._picker(draft, offer.model(draft.model), *_offered_for(offer, draft))

    def _picker(self, draft: Draft, model: Model | None, models: list[Model],
                too_long: list[Model]) -> Picker:
        improve = self.improve_price if model is None or model.improve else None
        return Picker(draft, model, models, too_long, improve)

    async def owned_draft(self, draft_id: int, user_id: int) -> Draft:
        return (await self._owned(draft_id, user_id))[0]

    async def _owned(self, draft_id: int, user_id: int) -> tuple[Draft, Offer]:
        """owned_draft, and the offer as it is now, both from one statement as a rule
        (Store.draft_and_overrides): a press reads no more than it writes."""
        draft, overrides = await self.store.draft_and_overrides(draft_id)
        if draft is None:
            raise PickerError(texts.OUTDATED)
        if draft.user_id != user_id:
            raise PickerError(texts.NOT_YOURS)
        if draft.state != "open":
            raise PickerError(N_("This request was already sent or cancelled."))
        if self._clock() - draft.created_at > DRAFT_LIFETIME:
            raise PickerError(N_("This menu has expired. Send the command again."))
        return draft, offer_of(overrides)

    async def charge(self, draft_id: int, user_id: int, promised: str, *,
                     exempt: bool = False) -> tuple[Generation, Model]:
        """Charge and record the generation in one transaction, and show its status line.
        `promised` is what the pressed ✅ was drawn from (keyboards.promise: the draft revision
        and the price): the price it showed is the price charged, or nothing is (PickerChanged,
        also when an admin changed the price since). `exempt` (admins) skips the per-user
        limits. Raises ShortOfCredits (nothing charged) or PickerError. `submit` comes next."""
        draft, offer = await self._owned(draft_id, user_id)
        revision, price = _promise(promised)
        return await self._charge(draft, revision, price, exempt=exempt, offer=offer)

    async def again(self, generation_id: int, *, user_id: int, chat_id: int, price: int,
                    exempt: bool = False) -> tuple[Generation, Model]:
        """🔁 Again · N: the same model, options, prompt and picture, charged at once at `price`,
        the price its button showed. A model or price changed since: PickerChanged, whose
        picker shows what the same request costs now (nothing is charged)."""
        old = await self.owned_generation(generation_id, user_id)
        if old.source_id is not None:  # a follow-up's: the same follow-up of the same result
            source = await self.owned_generation(old.source_id, user_id)
            model = (await current_offer(self.store)).model(old.model)
            if model is None:
                raise PickerError(N_("This model is no longer available."))
            return await self._follow(source, model, old.input, price, chat_id=chat_id,
                                      request_message_id=old.request_message_id
                                      if chat_id == old.chat_id else None, exempt=exempt)
        model = get_model(old.model)
        if model is None:
            raise PickerError(texts.OUTDATED)
        picker = await self.reopen(old, chat_id=chat_id, model=model, options=old.options)
        if picker.model is None or picker.model.id != model.id or picker.price != price:
            raise PickerChanged(picker)
        return await self._charge(picker.draft, picker.draft.revision, price, exempt=exempt)

    async def follow_up(self, source_id: int, *, user_id: int, role: str, file: int,
                        price: int, chat_id: int, request_message_id: int | None,
                        exempt: bool = False) -> tuple[Generation, Model]:
        """⬆️ Upscale · N or ➕ Extend · N under a delivered result: the catalog's follow-up of
        that role run on file `file` of it, charged at once at `price` (what the button showed;
        another price now: PriceChanged, nothing charged). The new generation replies to
        `request_message_id` (the result pressed). `submit` comes next."""
        source = await self.owned_generation(source_id, user_id)
        model = (await current_offer(self.store)).follow_up(source.model, role)
        value = source_of(source, role, file)
        if model is None or value is None:
            raise PickerError(N_("This model is no longer available."))
        return await self._follow(source, model, model.follow_up_input(value), price,
                                  chat_id=chat_id, request_message_id=request_message_id,
                                  exempt=exempt)

    async def _follow(self, source: Generation, model: Model, kie_input: dict[str, Any],
                      price: int, *, chat_id: int, request_message_id: int | None,
                      exempt: bool) -> tuple[Generation, Model]:
        """Charge and record a follow-up of `source`'s result, by the ledger's rules as a
        generation is (Store.start_follow_up: a second press while it runs charges nothing)."""
        if not source.result_urls or not kie_keeps(source, self._clock()):
            raise PickerError(RESULT_GONE)
        if price != model.price:
            raise PriceChanged(model.price)
        try:
            generation = await self.store.start_follow_up(
                source, chat_id=chat_id, request_message_id=request_message_id, model=model.id,
                input=kie_input, price=price,
                deadline_at=self._clock() + self.kie_settings.deadline(model.deadline),
                limits=None if exempt else self.limits)
        except FollowUpOpen:
            raise PickerError(N_("It is already under way; the result will come here.")) from None
        except LimitReached as limit:
            raise PickerError(LIMIT_MESSAGES[limit.which]) from None
        except InsufficientCredits as short:
            raise ShortOfCredits(None, short.price, short.balance, None) from None
        await self.notifier.status(generation, force=True)
        return generation, model

    async def owned_generation(self, generation_id: int, user_id: int) -> Generation:
        """The generation a button under a result or a status line names: the presser's own,
        else a refusal."""
        generation = await self.store.get_generation(generation_id)
        if generation is None:
            raise PickerError(texts.OUTDATED)
        if generation.user_id != user_id:
            raise PickerError(texts.NOT_YOURS)
        return generation

    async def reopen(self, old: Generation, *, chat_id: int, model: Model | None = None,
                     options: dict[str, str] | None = None, remembered: bool = True) -> Picker:
        """A new picker for the request `old` made. It lives where the button was pressed (a
        forwarded result: there), replying to the request only in the request's own chat."""
        return await self.open(
            user_id=old.user_id, chat_id=chat_id, kind=old.kind, prompt=old.prompt,
            request_message_id=old.request_message_id if chat_id == old.chat_id else None,
            picture=old.picture, model=model, options=options, remembered=remembered)

    async def _charge(self, draft: Draft, revision: int, price: int, *, exempt: bool,
                      offer: Offer | None = None) -> tuple[Generation, Model]:
        """`offer`: as read with the draft (None: read now)."""
        if offer is None:
            offer = await current_offer(self.store)
        model = offer.model(draft.model)
        if model is None:
            raise PickerError(N_("This model is no longer available."))
        if (revision, price) != (draft.revision, model.price_for(draft.options)):
            raise PickerChanged(self._picker(draft, model, *_offered_for(offer, draft)))
        if len(draft.prompt) > model.max_prompt:
            raise PickerError(N_("The prompt is too long for this model."))
        limits = None if exempt else self.limits
        try:
            generation = await self.store.start_generation(
                draft.id, revision=revision, input=model.build_input(draft.prompt, draft.options),
                price=price,
                deadline_at=self._clock() + self.kie_settings.deadline(model.deadline), limits=limits)
        except DraftClosed:
            raise PickerError(N_("This request was already sent or cancelled.")) from None
        except DraftChanged:  # an option press landed between the check above and the charge
            fresh = await self.owned_draft(draft.id, draft.user_id)
            raise PickerChanged(await self.picker(fresh)) from None
        except LimitReached as limit:
            raise PickerError(LIMIT_MESSAGES[limit.which]) from None
        except InsufficientCredits as short:
            await self.store.mark_short(draft.id)  # a purchase offers this ✅ again
            models = _offered_for(offer, draft)[0]
            raise ShortOfCredits(draft, short.price, short.balance,
                                 _cheaper(models, model, short.balance)) from None
        await self.notifier.status(generation, force=True)
        return generation, model

    def submit_soon(self, generation: Generation, model: Model) -> None:
        """`submit` in the background: the create may wait long for Kie's rate budget, and the
        press that asked for it should not hold its update (and a slot) all that time."""
        task = asyncio.create_task(self.submit(generation, model), name=f"submit-{generation.id}")
        self._submits.add(task)
        task.add_done_callback(self._submits.discard)

    async def stop(self, grace: float) -> None:
        """Let the creates under way finish for up to `grace` seconds, then cancel the rest:
        those are refunded as interrupted at the next start (or recovered by their callback)."""
        if self._submits:
            await asyncio.wait(set(self._submits), timeout=grace)
        for task in list(self._submits):
            task.cancel()
        await asyncio.gather(*self._submits, return_exceptions=True)

    async def submit(self, generation: Generation, model: Model) -> None:
        """Create the Kie task (after handing Kie the input picture, if any); a refusal
        refunds at once and tells the user why."""
        # The create may wait long for Kie's budget: meanwhile its status line is redrawn, so
        # that its place in the line counts down (Notifier.tick; stopped by the fence when the
        # create goes out, by ✖ Cancel's or a refund's final text, and here at the latest: a
        # stop that cancels this task ends it too).
        self.notifier.tick(generation)
        try:
            await self._submit(generation, model)
        finally:
            await self.notifier.untick(generation.id)

    async def _submit(self, generation: Generation, model: Model) -> None:
        try:
            kie_input = generation.input
            if generation.picture is not None:
                kie_input = model.with_picture(kie_input,
                                               await self.pictures.upload(generation.picture))
            task_id, key = await self._start(generation, model, kie_input)
        except PictureError as error:
            await self._fail(generation, error.reason)
            return
        except KieError as error:
            await self._refuse(generation, model, error)
            return
        except LeaseLost:
            # Settled meanwhile (✖ Cancel, or refunded past its deadline while this instance
            # was frozen): the create is not sent.
            log.warning("%s: not sent to Kie: it was settled meanwhile", generation)
            return
        first_check = self._clock() + self.schedule.first_delay(model)
        if not await self.store.mark_submitted(generation.id, task_id, first_check, key=key):
            # Refunded while the create was under way (its deadline passed while this instance
            # was frozen between its fence and the request): the refund stands.
            log.warning("%s: Kie task %s created for a generation settled meanwhile",
                        generation, task_id)
            return
        log.info("%s: Kie task %s created", generation, task_id)
        self.wake_tracker()
        # Sent: the status line loses its ✖ Cancel (within a second after a wait in line, else at
        # its next redraw; a press meanwhile is told it went out).
        await self.notifier.status(replace(generation, state=GenerationState.RUNNING,
                                           kie_state=None), sent=True)

    async def cancel(self, generation_id: int, user_id: int) -> None:
        """✖ Cancel under a status line: refunded at once if its create has not gone out
        (Store.cancel_pending: the press and the send cannot both win)."""
        await self.owned_generation(generation_id, user_id)
        cancelled = await self.store.cancel_pending(generation_id, user_id)
        if cancelled is None:
            raise PickerError(N_("It has already gone to Kie.ai and can no longer be cancelled."))
        log.info("%s: cancelled before its create went out", cancelled)
        await self.notifier.failed(cancelled)

    async def _start(self, generation: Generation, model: Model,
                     kie_input: dict[str, Any]) -> tuple[str, str]:
        """Create the task through the key with the most room: (task id, key). A key Kie
        refuses (401, 402, 433: it surely took nothing) leaves the pool, admins are told once, and
        the next key is tried; the last one's refusal is the answer."""
        while True:
            key = self.kie.pick_key()
            try:
                task_id = await self.kie.start(
                    model.api, model.kie_model, kie_input, owner=generation.user_id,
                    callback_url=(self.callback_urls.for_generation(generation.id)
                                  if self.callback_urls else None), key=key,
                    fence=partial(self._fence, generation))
            except (KieAuthError, KieInsufficientCredits) as error:
                if not await retire_refused_key(self.kie, self.notifier, key, str(error.code)):
                    raise  # the last key left: its refusal is the answer
                continue
            return task_id, key

    async def _fence(self, generation: Generation) -> None:
        """Just before the create goes out: raises LeaseLost unless this instance still holds
        the generation (a long freeze may have let it be refunded meanwhile)."""
        await self.notifier.untick(generation.id)  # it leaves the line now: no more "in line"
        if not await self.store.fence_create(generation.id):
            raise LeaseLost(generation.id)

    async def _refuse(self, generation: Generation, model: Model, error: KieError) -> None:
        log.warning("%s: Kie.ai refused the task: %s", generation, error)
        if isinstance(error, KieValidationError):
            reason, detail = "rejected", error.message
        else:
            reason, detail = error.reason or "unavailable", None
        if isinstance(error, KieAuthError):
            await self.notifier.auth_refused()
        elif isinstance(error, KieKeyCapped):
            await self.notifier.alert_admins(
                "key-cap", N_("The Kie.ai key has reached the usage cap its account set on it "
                              "(433). Generations are refunded."))
        elif isinstance(error, KieInsufficientCredits):
            await self.notifier.alert_admins(
                "credits", N_("The Kie.ai account is out of credits. Generations are refunded."))
        elif isinstance(error, KieModelDisabled) and await self.store.set_model_hidden(
                model.id, HIDDEN_BY_KIE):  # hidden until an admin says /model … on: told once
            await self.notifier.alert_admins(
                f"disabled:{model.id}", N_("Kie.ai says the model {model} is disabled. It is "
                                           "hidden now; /model {entry} on offers it again."),
                model=model.kie_model, entry=model.entry)
        await self._fail(generation, reason, detail)

    async def _fail(self, generation: Generation, reason: str, detail: str | None = None) -> None:
        failed = await self.store.fail_generation(generation.id, reason, detail)
        if failed is not None:
            await self.notifier.failed(failed)


def _offered(offer: Offer, kind: str, prompt: str, *,
             picture: bool) -> tuple[list[Model], list[Model]]:
    """The models offered for this prompt, and those left out because it is too long."""
    models = offer.models_of(kind, picture=picture)
    return ([m for m in models if len(prompt) <= m.max_prompt],
            [m for m in models if len(prompt) > m.max_prompt])


def _cheaper(models: list[Model], than: Model, balance: int) -> Model | None:
    """The dearest model other than `than` that `balance` pays at its default options."""
    affordable = [m for m in models if m.id != than.id and m.price_for({}) <= balance]
    return max(affordable, key=lambda m: m.price_for({}), default=None)


def _offered_for(offer: Offer, draft: Draft) -> tuple[list[Model], list[Model]]:
    return _offered(offer, draft.kind, draft.prompt, picture=draft.picture is not None)


def _promise(promised: str) -> tuple[int, int]:
    """(revision, price) from a ✅ button's data; (-1, -1) for anything else (old or forged)."""
    revision, _, price = promised.partition("-")
    if revision.isascii() and revision.isdigit() and price.isascii() and price.isdigit():
        return int(revision), int(price)
    return -1, -1
