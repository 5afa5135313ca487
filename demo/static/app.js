// The demo's chat page: who you are, what the bot sent into your chat (server-sent events:
// one snapshot of the chat per change), and what you send back. No framework, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { people: [], me: null, events: null, replyTo: null, seen: new Set(),
                autoReplied: new Set(), signatures: new Map() };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === null || value === undefined) continue;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function post(path, body) {
  const response = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                       body: JSON.stringify({ user: state.me.id, ...body }) });
  if (!response.ok) toast(await response.text(), true);
  return response.ok ? response.json() : null;
}

function toast(text, alert = false) {
  const node = el("div", { class: alert ? "toast alert" : "toast" }, text);
  $("toasts").append(node);
  setTimeout(() => node.remove(), alert ? 6000 : 3500);
}

// -- who you are ----------------------------------------------------------------------------

function choose(person) {
  state.me = person;
  localStorage.setItem("demo-person", String(person.id));
  for (const button of $("people").children) button.classList.toggle("on", button.dataset.id === String(person.id));
  $("hint").textContent = person.role === "admin"
    ? `You are ${person.name}, the bot's admin (id ${person.id}): /dashboard sends you a one-time link to the web dashboard.`
    : `You are ${person.name} (id ${person.id}): type what you want to see, or press a command below.`;
  $("chips").replaceChildren(...person.chips.map((chip) =>
    el("button", { type: "button", class: "chip", onclick: () => send(chip) }, chip)));
  $("log").replaceChildren();
  state.signatures.clear();
  setReply(null);
  listen();
}

function listen() {
  if (state.events) state.events.close();
  state.events = new EventSource(`/api/events?user=${state.me.id}`);
  state.events.onmessage = (event) => show(JSON.parse(event.data));
}

// -- what the bot sent ----------------------------------------------------------------------

function media(item) {
  if (item.kind === "photo" || item.kind === "sticker") return el("img", { src: item.src, alt: item.kind, class: "media" });
  if (item.kind === "video" || item.kind === "animation" || item.kind === "video_note") {
    return el("video", { src: item.src, controls: "", playsinline: "", loop: "", muted: "", class: "media" });
  }
  if (item.kind === "audio" || item.kind === "voice") return el("audio", { src: item.src, controls: "" });
  return el("a", { href: item.src, download: item.name, class: "file" }, `📎 ${item.name}`);
}

function keyboard(message) {
  return el("div", { class: "keyboard" }, ...message.buttons.map((row) => el("div", { class: "row" },
    ...row.map((button) => button.url
      ? el("a", { class: "button", href: button.url, target: "_blank", rel: "noopener noreferrer" }, `${button.text} ↗`)
      : el("button", { type: "button", class: "button", disabled: button.callback_data ? null : "",
                       onclick: () => post("/api/press", { message_id: message.id, data: button.callback_data }) },
           button.text)))));
}

function bubble(message) {
  const body = el("div", { class: "bubble" });
  if (message.reply) body.append(el("div", { class: "quote" }, message.reply.text || "…"));
  for (const item of message.media) body.append(media(item));
  if (message.invoice) {
    const invoice = message.invoice;
    body.append(el("div", { class: "invoice" }, el("strong", {}, invoice.title), el("div", {}, invoice.description),
      el("button", { type: "button", class: "button pay", onclick: () => pay(message.id) },
         `Pay ⭐ ${invoice.total_amount}`)));
  }
  if (message.html) {
    const text = el("div", { class: "text" });
    text.innerHTML = message.html;  // made safe by the server: escaped but for Telegram's own tags
    body.append(text);
  }
  if (message.edited) body.append(el("div", { class: "meta" }, "edited"));
  body.append(el("button", { type: "button", class: "reply-to", title: "Reply to this message",
                             onclick: () => setReply(message) }, "↩"));
  const node = el("div", { class: message.mine ? "message mine" : "message bot", "data-id": String(message.id) }, body);
  if (message.buttons.length) node.append(keyboard(message));
  return node;
}

function show(snapshot) {
  const log = $("log");
  const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 120;
  const wanted = new Set(snapshot.messages.map((m) => String(m.id)));
  for (const node of [...log.children]) {
    if (!wanted.has(node.dataset.id)) { node.remove(); state.signatures.delete(node.dataset.id); }
  }
  let previous = null;
  let added = false;
  for (const message of snapshot.messages) {
    const id = String(message.id);
    const signature = JSON.stringify(message);
    let node = log.querySelector(`:scope > [data-id="${id}"]`);
    if (!node || state.signatures.get(id) !== signature) {
      const fresh = bubble(message);
      if (node) node.replaceWith(fresh); else added = true;
      node = fresh;
      state.signatures.set(id, signature);
    }
    if (previous ? previous.nextSibling !== node : log.firstChild !== node) {
      if (previous) previous.after(node); else log.prepend(node);
    }
    previous = node;
    if (message.force_reply !== undefined && !state.autoReplied.has(`${state.me.id}:${id}`)) {
      state.autoReplied.add(`${state.me.id}:${id}`);  // as Telegram's clients do with ForceReply
      setReply(message, message.force_reply);
    }
  }
  if (state.replyTo && !wanted.has(String(state.replyTo))) setReply(null);
  for (const answer of snapshot.answers) {
    if (!state.seen.has(answer.id)) { state.seen.add(answer.id); toast(answer.text, answer.alert); }
  }
  $("typing").hidden = !snapshot.typing;
  if (added || nearBottom) log.scrollTop = log.scrollHeight;
}

// -- what you send --------------------------------------------------------------------------

function setReply(message, placeholder) {
  state.replyTo = message ? message.id : null;
  $("replying").hidden = !message;
  $("replying-text").textContent = message ? (message.reply && !message.html ? "…" : textOf(message)) : "";
  $("text").placeholder = placeholder || "Message the bot, e.g. /image a red fox in the snow";
  if (message) $("text").focus();
}

function textOf(message) {
  const scratch = document.createElement("div");
  scratch.innerHTML = message.html;
  const text = scratch.textContent || (message.media[0] ? `[${message.media[0].kind}]` : "a message");
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}

async function send(text) {
  if (!text.trim()) return;
  const reply = state.replyTo;
  setReply(null);
  await post("/api/send", { text, reply_to: reply });
}

async function pay(messageId) {
  const result = await post("/api/pay", { message_id: messageId });
  if (result && !result.ok) toast(result.error || "the payment was refused", true);
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value;
  $("text").value = "";
  send(text);
});
$("photo").addEventListener("click", () => {
  const caption = $("text").value;
  const reply = state.replyTo;
  $("text").value = "";
  setReply(null);
  post("/api/photo", { caption, reply_to: reply });
});
$("replying-cancel").addEventListener("click", () => setReply(null));

fetch("/api/people").then((r) => r.json()).then((people) => {
  state.people = people;
  $("people").replaceChildren(...people.map((person) => el("button", {
    type: "button", "data-id": String(person.id), onclick: () => choose(person) },
    `${person.role === "admin" ? "🛡" : "👤"} ${person.name}`)));
  const saved = people.find((p) => String(p.id) === localStorage.getItem("demo-person"));
  choose(saved || people[0]);
});
