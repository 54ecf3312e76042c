// Passkeys (WebAuthn) for a form marked data-passkey="get" (sign in) or "create" (register):
// on submit, fetch the options (a challenge NIXA stored for this request or session), ask the
// browser for the passkey, put its answer in the form's `credential` field, and submit the form.
// Every check is on the server; this only carries bytes between NIXA and the authenticator.
"use strict";

(function () {
  function fromB64url(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
    return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer;
  }

  function toB64url(buffer) {
    let text = "";
    new Uint8Array(buffer).forEach((b) => { text += String.fromCharCode(b); });
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function creationOptions(o) {
    o.challenge = fromB64url(o.challenge);
    o.user.id = fromB64url(o.user.id);
    o.excludeCredentials = (o.excludeCredentials || []).map((c) => Object.assign({}, c, { id: fromB64url(c.id) }));
    return { publicKey: o };
  }

  function requestOptions(o) {
    o.challenge = fromB64url(o.challenge);
    o.allowCredentials = (o.allowCredentials || []).map((c) => Object.assign({}, c, { id: fromB64url(c.id) }));
    return { publicKey: o, mediation: "optional" };
  }

  function asJson(credential) {
    const r = credential.response;
    const response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64url(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      if (r.userHandle) response.userHandle = toB64url(r.userHandle);
    }
    return JSON.stringify({ id: credential.id, rawId: toB64url(credential.rawId), type: credential.type, response: response,
      clientExtensionResults: credential.getClientExtensionResults(), authenticatorAttachment: credential.authenticatorAttachment });
  }

  function show(form, text) {
    const box = form.querySelector("[data-passkey-error]");
    box.textContent = text;
    box.hidden = false;
  }

  async function run(form) {
    const create = form.dataset.passkey === "create";
    const body = new URLSearchParams({ csrf: form.elements.csrf.value });
    const answer = await fetch(form.dataset.options, { method: "POST", body: body, credentials: "same-origin" });
    if (answer.status === 401) { window.location.reload(); return; }  // the sign-in got too old: the page asks again
    if (!answer.ok) throw new Error("options " + answer.status);
    const options = await answer.json();
    const credential = create ? await navigator.credentials.create(creationOptions(options))
      : await navigator.credentials.get(requestOptions(options));
    form.elements.credential.value = asJson(credential);
    form.submit();
  }

  document.querySelectorAll("form[data-passkey]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!window.PublicKeyCredential) { show(form, form.dataset.unsupported); return; }
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      run(form).catch(() => { show(form, form.dataset.failed); }).finally(() => { button.disabled = false; });
    });
  });
})();
