// The pages' one script. No page needs it: without it, the Print buttons stay hidden (the
// browser's own Print gives the same sheet) and a member types their credential.

// A Print button on receipts and cards.
for (const button of document.querySelectorAll("button[data-print]")) {
  button.hidden = false;
  button.addEventListener("click", () => window.print());
}

// A member's credential from the QR code they were given (`/app/#credential=…`). A fragment
// never leaves the phone; it fills the sign-in field, then is taken out of the address and the
// history, whatever page it reached.
const scanned = new URLSearchParams(location.hash.slice(1)).get("credential");
if (scanned !== null) {
  history.replaceState(null, "", location.pathname + location.search);
  const field = document.getElementById("credential");
  if (field) {
    field.value = scanned;
    field.form.querySelector("button[type=submit]")?.focus();
  }
}
