// The roomtape console: lists recordings and live rooms through /api/v1 with the token the user
// typed, a static API token or a LiveKit access token; /api/v1/me says what it may do, and only
// that is shown (a one-room token sees its room, buttons only where it may act). Plain script,
// no build step. Every text from the API goes in through textContent, never
// innerHTML: room names and errors are whatever LiveKit and users made them.
"use strict";

(() => {
  const TOKEN_KEY = "roomtape.token";
  const PAGE_SIZE = 25;
  // The API's largest page; a refresh reloads what is shown in one request, up to this.
  const MAX_PAGE = 500;
  const REFRESH_MS = 5000;
  const LIVE_STATUSES = new Set(["starting", "active", "stopping"]);
  // What the API deletes (CONTRACTS §7); `stopped` still waits for its files and is refused.
  const FINAL_STATUSES = new Set(["ready", "failed", "aborted"]);
  // The vendored HLS player (api/console/vendor/hls.js), loaded the first time an HLS
  // recording is played.
  const HLS_PLAYER = "/console/hls.light.min.js";
  // Presigned links live at most this long (SigV4's limit).
  const MAX_LINK_SECONDS = 7 * 24 * 3600;

  const $ = (id) => document.getElementById(id);
  const ui = {
    signin: $("signin"),
    signinForm: $("signin-form"),
    signinError: $("signin-error"),
    token: $("token"),
    signInButton: $("sign-in"),
    app: $("app"),
    sessionActions: $("session-actions"),
    updated: $("updated"),
    who: $("who"),
    roomsPanel: $("rooms-panel"),
    recordingsPanel: $("recordings-panel"),
    refresh: $("refresh"),
    signOut: $("sign-out"),
    banner: $("banner"),
    bannerText: $("banner-text"),
    bannerClose: $("banner-close"),
    notice: $("notice"),
    rooms: $("rooms"),
    roomsEmpty: $("rooms-empty"),
    endpoints: $("endpoints"),
    endpointList: $("endpoint-list"),
    filters: $("filters"),
    recordings: $("recordings"),
    recordingsEmpty: $("recordings-empty"),
    more: $("more"),
    confirm: $("confirm"),
    confirmWhat: $("confirm-what"),
    usagePanel: $("usage-panel"),
  };

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    // GET /api/v1/me: {kind, identity, room, can}.
    me: null,
    filters: { room: "", status: "", kind: "" },
    usageLoadedAt: 0,
    cursor: null,
    shown: 0,
    refreshing: false,
    // The Idempotency-Key of a start that failed in a way worth retrying, per room: a retry
    // of the same attempt must not start a second recording if the first one did start.
    startKeys: new Map(),
    // The recording the open confirmation dialog is about.
    pendingDelete: null,
  };

  /** An API answer that was not a success, or no answer at all. */
  class ApiFailure extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // ---- talking to the API -------------------------------------------------------------

  async function api(method, path, { body, headers = {} } = {}) {
    const init = {
      method,
      cache: "no-store",
      headers: { Accept: "application/json", Authorization: `Bearer ${state.token}`, ...headers },
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      throw new ApiFailure(0, "network_error", `the API did not answer (${error.message})`);
    }
    const text = await response.text();
    const data = parseJson(text);
    if (!response.ok) {
      const detail = (data && data.error) || {};
      throw new ApiFailure(
        response.status,
        detail.code || `http_${response.status}`,
        detail.message || text.slice(0, 300) || response.statusText,
      );
    }
    return data;
  }

  function parseJson(text) {
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch {
      return null;
    }
  }

  /** Shows `error` in the page; a rejected token also signs out. */
  function report(error) {
    const failure =
      error instanceof ApiFailure ? error : new ApiFailure(0, "console_error", String(error));
    const status = failure.status ? ` (HTTP ${failure.status})` : "";
    showBanner(`${failure.code}${status}: ${failure.message}`, failure.code);
    if (failure.status === 401) signOut(`The API refused the token: ${failure.message}`);
  }

  function showBanner(text, code) {
    ui.bannerText.textContent = text;
    ui.banner.dataset.code = code;
    ui.banner.hidden = false;
  }

  function hideBanner() {
    ui.banner.hidden = true;
    delete ui.banner.dataset.code;
  }

  let noticeTimer = null;
  function notify(text) {
    ui.notice.textContent = text;
    ui.notice.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => (ui.notice.hidden = true), 6000);
  }

  /** Runs `work` with `button` disabled, reporting what fails. Resolves to whether it worked. */
  async function busy(button, work) {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      await work();
      return true;
    } catch (error) {
      report(error);
      return false;
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }

  // ---- formatting ---------------------------------------------------------------------

  function clock(seconds) {
    if (seconds == null) return "—";
    const total = Math.max(0, Math.round(seconds));
    const pad = (n) => String(n).padStart(2, "0");
    return `${pad(Math.floor(total / 3600))}:${pad(Math.floor(total / 60) % 60)}:${pad(total % 60)}`;
  }

  function size(bytes) {
    if (bytes == null) return "—";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
  }

  const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
  function when(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? iso : timeFormat.format(date);
  }

  /** An element with a class and text. */
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  function button(label, testid, className) {
    const node = el("button", className, label);
    node.type = "button";
    node.dataset.testid = testid;
    return node;
  }

  // ---- what the token may do ----------------------------------------------------------

  /** Whether the token may `what` (read, start, stop, delete, rooms) somewhere. */
  function may(what) {
    return state.me !== null && state.me.can.includes(what);
  }

  /** Asks the API who the token is, and lays the page out for what it may do. */
  async function loadMe() {
    state.me = await api("GET", "/api/v1/me");
    const { kind, identity, room } = state.me;
    const parts = [identity || "(no identity)", kind === "livekit" ? "LiveKit token" : "API token"];
    if (room) parts.push(`room ${room}`);
    ui.who.textContent = parts.join(" · ");
    ui.recordingsPanel.hidden = !may("read");
    ui.usagePanel.hidden = !may("usage");
    ui.roomsPanel.hidden = !(may("rooms") || room);
    // Without roomList, the one room the token is for, live or not.
    $("rooms-title").textContent = may("rooms") ? "Live rooms" : "Your room";
    // A one-room token reads that room only: the filter says so and cannot be changed.
    const roomFilter = ui.filters.elements.room;
    roomFilter.disabled = Boolean(room);
    roomFilter.value = room || "";
    state.filters.room = room || "";
  }

  // ---- signing in and out -------------------------------------------------------------

  function showSignIn(message) {
    ui.app.hidden = true;
    ui.sessionActions.hidden = true;
    ui.signin.hidden = false;
    ui.signinError.hidden = !message;
    ui.signinError.textContent = message || "";
    ui.token.value = "";
    ui.token.focus();
  }

  function signOut(message) {
    state.token = null;
    state.me = null;
    sessionStorage.removeItem(TOKEN_KEY);
    ui.notice.hidden = true;
    clearRecordings();
    ui.rooms.replaceChildren();
    showSignIn(message);
  }

  async function signIn(event) {
    event.preventDefault();
    const token = ui.token.value.trim();
    if (!token) return;
    state.token = token;
    hideBanner();
    // The first load is the check: a token the API refuses brings the prompt back.
    const worked = await busy(ui.signInButton, async () => {
      await loadMe();
      await refreshAll({ reset: true });
    });
    if (worked) {
      sessionStorage.setItem(TOKEN_KEY, token);
      ui.signin.hidden = true;
      ui.signinError.hidden = true;
      ui.app.hidden = false;
      ui.sessionActions.hidden = false;
    } else {
      // Maybe not the token's fault (the API is down, say): the prompt stays, the banner says
      // why, and nothing is remembered.
      state.token = null;
    }
  }

  // ---- recordings ---------------------------------------------------------------------

  function recordingsPath(limit, cursor) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (state.filters.room) query.set("room", state.filters.room);
    if (state.filters.status) query.set("status", state.filters.status);
    if (state.filters.kind) query.set("kind", state.filters.kind);
    if (cursor != null) query.set("cursor", String(cursor));
    return `/api/v1/recordings?${query}`;
  }

  /** Takes a card out of the page, and its HLS player with it. */
  function removeCard(card) {
    const video = card.querySelector("video");
    if (video && video.hls) video.hls.destroy();
    card.remove();
  }

  function clearRecordings() {
    for (const card of [...ui.recordings.children]) removeCard(card);
  }

  function cardOf(egressId) {
    for (const card of ui.recordings.children) {
      if (card.dataset.egressId === egressId) return card;
    }
    return null;
  }

  function createCard(recording) {
    const card = el("li", "recording");
    card.dataset.testid = "recording";
    card.dataset.egressId = recording.egress_id;

    const head = el("div", "recording-head");
    const names = el("div", "recording-names");
    const room = el("div", "recording-room");
    room.dataset.testid = "recording-room";
    const id = el("div", "recording-id mono", recording.egress_id);
    names.append(room, id);
    const badge = el("span", "badge");
    badge.dataset.testid = "status-badge";
    // A fixed slot, so rows line up whether or not a recording has a picture.
    const thumb = el("div", "thumb");
    const image = document.createElement("img");
    image.alt = "";
    image.loading = "lazy";
    image.decoding = "async";
    image.hidden = true;
    image.dataset.testid = "thumbnail";
    // A link that does not open (expired, a bucket without public reads) leaves the slot empty.
    image.addEventListener("error", () => (image.hidden = true));
    thumb.append(image);
    head.append(thumb, names, badge);

    const facts = el("dl", "facts");
    for (const [label, key] of [
      ["Records", "records"],
      ["Created", "created"],
      ["Started", "started"],
      ["Duration", "duration"],
      ["Size", "size"],
      ["Requested by", "by"],
    ]) {
      const fact = el("div", "fact");
      const value = el("dd", null);
      value.dataset.fact = key;
      fact.append(el("dt", null, label), value);
      facts.append(fact);
    }

    const error = el("p", "recording-error");
    error.dataset.testid = "recording-error";
    const actions = el("div", "actions");
    const player = el("div", "player");
    player.hidden = true;
    const video = document.createElement("video");
    video.controls = true;
    video.preload = "metadata";
    video.playsInline = true;
    video.dataset.testid = "video";
    video.addEventListener("error", () => {
      const code = video.error ? video.error.code : "?";
      showBanner(`media_error: the browser could not play this file (MediaError ${code})`, "media_error");
    });
    player.append(video);

    card.append(head, facts, error, actions, player);
    return card;
  }

  /** Who started the recording through the API (its `metadata.requested_by`). */
  function requestedBy(recording) {
    const by = recording.metadata && recording.metadata.requested_by;
    if (!by || typeof by !== "object") return "—";
    return by.identity || (by.kind === "livekit" ? "a LiveKit token" : "an API token");
  }

  /**
   * Shows the recording's thumbnail in its row and as its player's poster. A link that has not
   * changed is left alone: the browser keeps the image it has.
   */
  function fillThumbnail(card, recording) {
    const url = recording.thumbnail_url || "";
    const image = card.querySelector("img[data-testid=thumbnail]");
    if (image.dataset.src === url) return;
    image.dataset.src = url;
    const video = card.querySelector("video");
    if (url) {
      image.src = url;
      image.hidden = false;
      video.poster = url;
    } else {
      image.removeAttribute("src");
      image.hidden = true;
      video.removeAttribute("poster");
    }
  }

  /** What a recording records: the room, a participant, or tracks. */
  function recorded(recording) {
    switch (recording.kind) {
      case "participant":
        return `participant ${recording.identity || ""}`;
      case "track":
        return `track ${recording.track_id || ""}`;
      case "track_composite":
        return `tracks ${[recording.audio_track_id, recording.video_track_id].filter(Boolean).join(" + ")}`;
      case "web":
        return "web page";
      default:
        return "room";
    }
  }

  /** Brings `card` up to date with `recording`, keeping its player (it may be playing). */
  function fillCard(card, recording) {
    card.dataset.status = recording.status;
    card.dataset.id = String(recording.id);
    card.dataset.format = recording.file_format || "";
    card.dataset.duration = String(recording.duration_seconds || 0);
    fillThumbnail(card, recording);
    card.querySelector(".recording-room").textContent = recording.room_name;
    const badge = card.querySelector(".badge");
    badge.textContent = recording.status;
    badge.className = `badge badge-${recording.status}`;
    const facts = {
      records: recorded(recording),
      created: when(recording.created_at),
      started: when(recording.started_at),
      duration: clock(recording.duration_seconds),
      size: size(recording.file_size_bytes),
      by: requestedBy(recording),
    };
    for (const value of card.querySelectorAll("dd[data-fact]")) {
      value.textContent = facts[value.dataset.fact];
    }
    const error = card.querySelector(".recording-error");
    error.textContent = recording.error || "";
    error.hidden = !recording.error;
    fillActions(card, recording);
  }

  function fillActions(card, recording) {
    const actions = card.querySelector(".actions");
    const ready = recording.status === "ready";
    const final = FINAL_STATUSES.has(recording.status);
    const wanted = `${ready}/${final}`;
    if (actions.dataset.shape === wanted) return;
    actions.dataset.shape = wanted;
    actions.replaceChildren();
    if (ready && may("read")) {
      const play = button("Play", "play", "primary");
      play.addEventListener("click", () => togglePlayer(card, play));
      const download = button("Download", "download");
      download.addEventListener("click", () => busy(download, () => startDownload(card)));
      actions.append(play, download);
    }
    if (final && may("delete")) {
      const remove = button("Delete", "delete", "danger");
      remove.addEventListener("click", () => askDelete(card, remove));
      actions.append(remove);
    }
  }

  async function link(card) {
    const egressId = encodeURIComponent(card.dataset.egressId);
    return api("GET", `/api/v1/recordings/${egressId}/download?redirect=false&expires=1h`);
  }

  function togglePlayer(card, play) {
    const player = card.querySelector(".player");
    const video = player.querySelector("video");
    if (!player.hidden) {
      video.pause();
      player.hidden = true;
      play.textContent = "Play";
      return;
    }
    busy(play, async () => {
      if (card.dataset.format === "m3u8") {
        await playHls(card, video);
      } else {
        const { url } = await link(card);
        video.src = url;
      }
      player.hidden = false;
      play.textContent = "Hide player";
      // Autoplay may be refused (no sound without a gesture); the controls are there then.
      video.play().catch(() => undefined);
    });
  }

  let hlsPlayer = null;
  /** The HLS player's constructor, its script added to the page the first time. */
  function loadHlsPlayer() {
    if (!hlsPlayer) {
      hlsPlayer = new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = HLS_PLAYER;
        script.addEventListener("load", () => resolve(window.Hls));
        script.addEventListener("error", () => {
          hlsPlayer = null;
          reject(new ApiFailure(0, "console_error", "the HLS player did not load"));
        });
        document.head.append(script);
      });
    }
    return hlsPlayer;
  }

  /**
   * Plays an HLS recording through hls.js, from the API's playlist, whose segment links are
   * presigned for the bucket (so a private bucket plays). The playlist request carries the
   * token; the segments' links carry their own signature.
   */
  async function playHls(card, video) {
    if (video.hls) return;
    const Hls = await loadHlsPlayer();
    if (!Hls.isSupported()) {
      throw new ApiFailure(0, "media_error", "this browser cannot play HLS here: download it instead");
    }
    // Links outlive a paused or rewound viewing of the whole recording.
    const seconds = Math.ceil(Math.max(3600, 3 * Number(card.dataset.duration)));
    const expires = Math.min(seconds, MAX_LINK_SECONDS);
    const egressId = encodeURIComponent(card.dataset.egressId);
    const hls = new Hls({
      // The Content-Security-Policy allows no workers: transmuxing runs on the page.
      enableWorker: false,
      xhrSetup(xhr, url) {
        if (new URL(url, location.href).origin !== location.origin) return;
        xhr.open("GET", url, true);
        xhr.setRequestHeader("Authorization", `Bearer ${state.token}`);
      },
    });
    hls.on(Hls.Events.ERROR, (_, data) => {
      if (!data.fatal) return;
      const status = data.response && data.response.code ? ` (HTTP ${data.response.code})` : "";
      showBanner(`media_error: the HLS recording did not play: ${data.details}${status}`, "media_error");
    });
    hls.loadSource(`/api/v1/recordings/${egressId}/playlist.m3u8?expires=${expires}s`);
    hls.attachMedia(video);
    video.hls = hls;
  }

  async function startDownload(card) {
    const { url } = await link(card);
    const anchor = el("a");
    anchor.href = url;
    anchor.download = `${card.dataset.egressId}`;
    // A cross-origin link ignores `download`: a new tab, so the console stays open.
    anchor.target = "_blank";
    anchor.rel = "noopener noreferrer";
    document.body.append(anchor);
    anchor.click();
    anchor.remove();
  }

  function askDelete(card, remove) {
    state.pendingDelete = { card, remove };
    const room = card.querySelector(".recording-room").textContent;
    ui.confirmWhat.textContent = `${card.dataset.egressId} — ${room}`;
    ui.confirm.returnValue = "";
    ui.confirm.showModal();
  }

  function onConfirmClosed() {
    const pending = state.pendingDelete;
    state.pendingDelete = null;
    if (!pending || ui.confirm.returnValue !== "delete") return;
    const { card, remove } = pending;
    busy(remove, async () => {
      const egressId = card.dataset.egressId;
      await api("DELETE", `/api/v1/recordings/${encodeURIComponent(egressId)}`);
      removeCard(card);
      state.shown = ui.recordings.children.length;
      ui.recordingsEmpty.hidden = state.shown > 0;
      notify(`Deleted ${egressId}.`);
    });
  }

  /**
   * Shows `items` (newest first) in place: cards are kept, updated, added and, within the
   * span `items` covers, removed. `complete` says nothing older exists beyond them.
   */
  function reconcile(items, complete, append) {
    const wanted = new Set(items.map((r) => r.egress_id));
    const oldest = items.length ? items[items.length - 1].id : Infinity;
    if (!append) {
      for (const card of [...ui.recordings.children]) {
        const inSpan = complete || Number(card.dataset.id) >= oldest;
        if (!wanted.has(card.dataset.egressId) && inSpan) removeCard(card);
      }
    }
    let previous = null;
    for (const recording of items) {
      let card = cardOf(recording.egress_id);
      if (!card) card = createCard(recording);
      fillCard(card, recording);
      const expected = previous ? previous.nextSibling : append ? null : ui.recordings.firstChild;
      if (card !== expected || !card.isConnected) {
        if (previous) previous.after(card);
        else if (append) ui.recordings.append(card);
        else ui.recordings.prepend(card);
      }
      previous = card;
    }
    state.shown = ui.recordings.children.length;
    ui.recordingsEmpty.hidden = state.shown > 0;
  }

  async function loadRecordings({ reset }) {
    if (reset) {
      clearRecordings();
      state.shown = 0;
    }
    const limit = Math.min(MAX_PAGE, Math.max(PAGE_SIZE, state.shown));
    const page = await api("GET", recordingsPath(limit, null));
    reconcile(page.items, page.next_cursor == null, false);
    // Past what a refresh could reload, the cursor of the earlier load stays right.
    if (state.shown <= MAX_PAGE) state.cursor = page.next_cursor;
    ui.more.hidden = state.cursor == null;
  }

  async function loadMore() {
    const page = await api("GET", recordingsPath(PAGE_SIZE, state.cursor));
    reconcile(page.items, page.next_cursor == null, true);
    state.cursor = page.next_cursor;
    ui.more.hidden = state.cursor == null;
  }

  // ---- rooms --------------------------------------------------------------------------

  function roomCardOf(name) {
    for (const card of ui.rooms.children) {
      if (card.dataset.room === name) return card;
    }
    return null;
  }

  function createRoomCard(room) {
    const card = el("li", "room");
    card.dataset.testid = "room";
    card.dataset.room = room.room_name;
    const name = el("div", "room-name", room.room_name);
    name.dataset.testid = "room-name";
    const live = el("span", "badge badge-active", "recording");
    live.dataset.testid = "room-recording";
    live.hidden = true;
    const counts = el("p", "room-counts");
    counts.dataset.testid = "room-counts";
    const since = el("p", "room-since");
    const actions = el("div", "actions");
    if (may("start")) {
      const start = button("Start recording", "start-recording", "primary");
      start.addEventListener("click", () => busy(start, () => startRecording(room.room_name)));
      actions.append(start);
    }
    if (may("stop")) {
      const stop = button("Stop recording", "stop-recording");
      stop.addEventListener("click", () => busy(stop, () => stopRecording(room.room_name)));
      actions.append(stop);
    }
    const head = el("div", "room-head");
    head.append(name, live);
    card.append(head, counts, since, actions);
    return card;
  }

  function fillRoomCard(card, room) {
    // A token without roomList knows its room's name only.
    if (room.participant_count == null) return;
    const viewers = room.participant_count === 1 ? "viewer" : "viewers";
    card.querySelector(".room-counts").textContent =
      `${room.participant_count} ${viewers} now · peak ${room.max_participants}`;
    card.querySelector(".room-since").textContent = `live since ${when(room.started_at)}`;
  }

  /** Marks the rooms a shown recording is live in (what the list holds, a hint only). */
  function markRecordingRooms() {
    const live = new Set();
    for (const card of ui.recordings.children) {
      if (LIVE_STATUSES.has(card.dataset.status)) {
        live.add(card.querySelector(".recording-room").textContent);
      }
    }
    for (const card of ui.rooms.children) {
      card.querySelector("[data-testid=room-recording]").hidden = !live.has(card.dataset.room);
    }
  }

  async function loadRooms() {
    const only = state.me && state.me.room;
    let rooms = [];
    if (may("rooms")) {
      rooms = await api("GET", "/api/v1/rooms?status=active");
      if (only) rooms = rooms.filter((r) => r.room_name === only);
    } else if (only) {
      rooms = [{ room_name: only }];
    }
    const names = new Set(rooms.map((r) => r.room_name));
    for (const card of [...ui.rooms.children]) {
      if (!names.has(card.dataset.room)) card.remove();
    }
    for (const room of rooms) {
      const card = roomCardOf(room.room_name) || createRoomCard(room);
      fillRoomCard(card, room);
      ui.rooms.append(card);
    }
    ui.roomsEmpty.hidden = rooms.length > 0;
  }

  // ---- usage ---------------------------------------------------------------------------

  const SVG = "http://www.w3.org/2000/svg";
  const USAGE_EVERY_MS = 60_000;
  const CHART = { width: 600, height: 160, top: 14, bottom: 20 };

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    if (text != null) node.textContent = text;
    return node;
  }

  /** Bars of `values` (one per day), the largest labelled, the first and last day named. */
  function barChart(chart, days, values, label) {
    chart.replaceChildren();
    const max = Math.max(0, ...values);
    const plot = CHART.height - CHART.top - CHART.bottom;
    const step = CHART.width / Math.max(1, values.length);
    values.forEach((value, i) => {
      const height = max > 0 ? (value / max) * plot : 0;
      const bar = svg("rect", {
        x: i * step + step * 0.1, y: CHART.top + plot - height,
        width: step * 0.8, height, class: "bar",
      });
      bar.dataset.day = days[i];
      bar.dataset.value = String(value);
      bar.append(svg("title", {}, `${days[i]}: ${label(value)}`));
      chart.append(bar);
    });
    chart.append(svg("text", { x: 2, y: 11, class: "axis" }, `max ${label(max)}`));
    if (days.length) {
      const y = CHART.height - 5;
      chart.append(svg("text", { x: 2, y, class: "axis" }, days[0]));
      chart.append(svg("text", { x: CHART.width - 2, y, class: "axis end" }, days[days.length - 1]));
    }
  }

  function fillTop(table, groups, none) {
    const body = table.querySelector("tbody");
    body.replaceChildren();
    const top = [...groups].sort((a, b) => b.minutes - a.minutes).slice(0, 5);
    for (const group of top) {
      const row = el("tr");
      const cost = group.estimated_cost == null ? "—" : group.estimated_cost.toFixed(2);
      for (const text of [group.key || none, group.minutes.toFixed(1), size(group.bytes_stored), cost]) {
        row.append(el("td", null, text));
      }
      body.append(row);
    }
    if (!top.length) body.append(el("tr", null, "nothing recorded"));
  }

  async function loadUsage() {
    const [days, rooms, users, retention] = await Promise.all([
      api("GET", "/api/v1/usage?group_by=day"),
      api("GET", "/api/v1/usage?group_by=room"),
      api("GET", "/api/v1/usage?group_by=user"),
      api("GET", "/api/v1/retention"),
    ]);
    const keys = days.groups.map((g) => g.key);
    barChart($("chart-minutes"), keys, days.groups.map((g) => g.minutes), (m) => `${m.toFixed(1)} min`);
    barChart($("chart-storage"), keys, days.groups.map((g) => g.bytes_stored), size);
    fillTop(document.querySelector("[data-testid=top-rooms]"), rooms.groups, "(none)");
    fillTop(document.querySelector("[data-testid=top-users]"), users.groups, "(no user)");
    $("usage-estimate").textContent = days.estimate
      ? `costs in ${days.estimate.currency} are estimates, not a bill`
      : "no prices set: no cost estimate";
    const rules = $("retention-rules");
    rules.replaceChildren();
    for (const rule of retention.rules) {
      rules.append(el("li", null, `${rule.pattern}: kept ${rule.keep}`));
    }
    if (!retention.rules.length) rules.append(el("li", null, "no rules: recordings are kept until deleted"));
    $("retention-due").textContent = retention.rules.length
      ? `The next sweep deletes ${retention.due.length} recording(s), ${size(retention.bytes)}.`
      : "";
  }

  // An endpoint counts as failing once it has dead-lettered deliveries, or one it has been
  // retrying for longer than this.
  const RETRYING_FOR_S = 60;

  /** Endpoints whose notifications are not getting through; the panel hides when none is. */
  async function loadEndpoints() {
    let page;
    try {
      page = await api("GET", "/api/v1/notifications?status=failed&limit=1");
    } catch (error) {
      // Tokens that may not read deployment-wide records see no panel rather than an error.
      if (error instanceof ApiFailure && error.status === 403) {
        ui.endpoints.hidden = true;
        return;
      }
      throw error;
    }
    const failing = page.endpoints.filter(
      (e) => e.failed > 0 || e.oldest_pending_seconds > RETRYING_FOR_S,
    );
    ui.endpointList.replaceChildren(
      ...failing.map((e) => {
        const item = el("li", "endpoint");
        item.dataset.endpoint = e.endpoint;
        item.dataset.testid = "endpoint";
        item.append(
          el("strong", "endpoint-name", e.endpoint),
          el("span", "endpoint-counts", `${e.failed} failed, ${e.pending} pending`),
          el("span", "endpoint-error", e.last_error || ""),
        );
        return item;
      }),
    );
    ui.endpoints.hidden = failing.length === 0;
  }

  /** A random (v4) UUID for Idempotency-Key. */
  function newKey() {
    // randomUUID exists only in secure contexts (https, localhost); getRandomValues everywhere,
    // and the console may well be served over plain http inside a network.
    if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  async function startRecording(room) {
    const key = state.startKeys.get(room) || newKey();
    try {
      const answer = await api("POST", `/api/v1/rooms/${encodeURIComponent(room)}/start-recording/`, {
        body: {},
        headers: { "Idempotency-Key": key },
      });
      state.startKeys.delete(room);
      notify(answer.message || `Recording ${answer.recording_id} is starting.`);
    } catch (error) {
      // No answer (network, 503, 504: the start may still happen): the next click retries this
      // very attempt, so it cannot start a second recording. An answer (4xx, or 502: LiveKit
      // refused, or the start expired) is final for its key; a new click is a new attempt.
      const retryable =
        error instanceof ApiFailure && [0, 503, 504].includes(error.status);
      if (retryable) state.startKeys.set(room, key);
      else state.startKeys.delete(room);
      throw error;
    }
    await refreshAll({ reset: false });
  }

  async function stopRecording(room) {
    const answer = await api("POST", `/api/v1/rooms/${encodeURIComponent(room)}/stop-recording/`, {
      body: {},
    });
    notify(answer.message || `Recording ${answer.recording_id} is stopping.`);
    await refreshAll({ reset: false });
  }

  // ---- refreshing ---------------------------------------------------------------------

  async function refreshAll({ reset }) {
    state.refreshing = true;
    try {
      await Promise.all([
        may("read") ? loadRecordings({ reset }) : null,
        loadRooms(),
        state.me.kind === "static" ? loadEndpoints() : null,
      ]);
      // Usage sums a month of recordings: it loads beside the rest, never holding the page
      // back, and at most once a minute.
      if (may("usage") && (reset || Date.now() - state.usageLoadedAt > USAGE_EVERY_MS)) {
        state.usageLoadedAt = Date.now();
        loadUsage().catch(report);
      }
      markRecordingRooms();
      ui.updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
    } finally {
      state.refreshing = false;
    }
  }

  function autoRefresh() {
    // Not while a dialog asks something, nor for a hidden tab, nor on top of a running one.
    if (!state.me || ui.app.hidden || ui.confirm.open || document.hidden || state.refreshing) {
      return;
    }
    refreshAll({ reset: false }).catch(report);
  }

  function applyFilters(event) {
    event.preventDefault();
    const form = new FormData(ui.filters);
    state.filters = {
      // A one-room token's filter is disabled, so not in the form.
      room: (state.me && state.me.room) || String(form.get("room") || "").trim(),
      status: String(form.get("status") || ""),
      kind: String(form.get("kind") || ""),
    };
    state.shown = 0;
    const submit = ui.filters.querySelector("button[type=submit]");
    busy(submit, () => refreshAll({ reset: true }));
  }

  // ---- wiring -------------------------------------------------------------------------

  ui.signinForm.addEventListener("submit", signIn);
  ui.signOut.addEventListener("click", () => {
    hideBanner();
    signOut("");
  });
  ui.refresh.addEventListener("click", () => busy(ui.refresh, () => refreshAll({ reset: false })));
  ui.more.addEventListener("click", () => busy(ui.more, loadMore));
  ui.filters.addEventListener("submit", applyFilters);
  ui.filters.elements.status.addEventListener("change", () => ui.filters.requestSubmit());
  ui.filters.elements.kind.addEventListener("change", () => ui.filters.requestSubmit());
  ui.bannerClose.addEventListener("click", hideBanner);
  ui.confirm.addEventListener("close", onConfirmClosed);
  setInterval(autoRefresh, REFRESH_MS);

  if (state.token) {
    ui.signin.hidden = true;
    ui.app.hidden = false;
    ui.sessionActions.hidden = false;
    loadMe()
      .then(() => refreshAll({ reset: true }))
      .catch(report);
  } else {
    showSignIn("");
  }
})();
