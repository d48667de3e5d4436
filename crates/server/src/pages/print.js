// The pages' one script: a Print button on receipts and cards. Without scripts the button stays
// hidden and the browser's own Print gives the same sheet (the print stylesheet hides the rest).
for (const button of document.querySelectorAll("button[data-print]")) {
  button.hidden = false;
  button.addEventListener("click", () => window.print());
}
