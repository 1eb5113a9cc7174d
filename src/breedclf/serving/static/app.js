"use strict";
// The page talks to the same /invocations endpoint as every other client: raw image bytes
// in, {"predictions": [{label, index, probability}, ...]} out. Labels are inserted as text,
// never as HTML.
(function () {
  const TOP_K = 5;
  const fileInput = document.getElementById("file");
  const statusLine = document.getElementById("status");
  const preview = document.getElementById("preview");
  const table = document.getElementById("predictions");
  const tbody = table.querySelector("tbody");
  const info = document.getElementById("model-info");
  let previewUrl = null;

  function setStatus(text, isError) {
    statusLine.textContent = text;
    statusLine.classList.toggle("error", Boolean(isError));
  }

  function render(predictions) {
    tbody.replaceChildren();
    predictions.forEach(function (p, i) {
      const row = document.createElement("tr");
      const rank = document.createElement("td");
      rank.textContent = String(i + 1);
      const label = document.createElement("td");
      label.className = "label";
      label.textContent = p.label;
      const prob = document.createElement("td");
      prob.className = "probability";
      const percent = (100 * p.probability).toFixed(1) + " %";
      prob.textContent = percent;
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.style.width = Math.max(1, Math.round(100 * p.probability)) + "%";
      prob.appendChild(bar);
      row.append(rank, label, prob);
      tbody.appendChild(row);
    });
    table.hidden = predictions.length === 0;
  }

  async function classify(file) {
    table.hidden = true;
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = URL.createObjectURL(file);
    preview.src = previewUrl;
    preview.alt = file.name;
    preview.hidden = false;
    setStatus("Classifying " + file.name + "…", false);
    let response;
    try {
      response = await fetch("invocations?top_k=" + TOP_K, {
        method: "POST",
        headers: {
          "Content-Type": file.type || "application/octet-stream",
          "Accept": "application/json",
        },
        body: file,
      });
    } catch (err) {
      setStatus("The server cannot be reached: " + err.message, true);
      return;
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      const reason = data && data.reason ? data.reason : response.statusText;
      setStatus("Error " + response.status + ": " + reason, true);
      return;
    }
    render(data.predictions);
    setStatus("Top " + data.predictions.length + " for " + file.name, false);
  }

  fileInput.addEventListener("change", function () {
    const file = fileInput.files && fileInput.files[0];
    if (file) classify(file);
  });

  fetch("info", { headers: { "Accept": "application/json" } })
    .then(function (r) { return r.ok ? r.json() : null; })
    .then(function (m) {
      if (m) info.textContent = m.arch + " · " + m.num_classes + " classes · " +
        m.preprocess.input_size + " px input";
    })
    .catch(function () { info.textContent = ""; });
})();
