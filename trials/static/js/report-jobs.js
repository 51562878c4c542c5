// Follows the report jobs still queued or running on the reports page: polls each job's
// status every two seconds, updates its progress bar and step, and reloads the page when one
// ends so that the new report shows in the history.
(function () {
  "use strict";
  const rows = Array.from(document.querySelectorAll("tr[data-job]")).filter(
    (row) => row.dataset.status === "queued" || row.dataset.status === "running"
  );
  if (rows.length === 0) return;
  async function poll() {
    let ended = false;
    for (const row of rows) {
      if (row.dataset.status === "done" || row.dataset.status === "failed") continue;
      try {
        const response = await fetch(row.dataset.job, { headers: { Accept: "application/json" } });
        if (!response.ok) continue;
        const job = await response.json();
        row.dataset.status = job.status;
        row.querySelector("progress").value = Math.round(job.progress * 100);
        row.querySelector(".job-step").textContent = job.step;
        row.querySelector(".job-status").textContent = job.error ? job.status + ": " + job.error : job.status;
        if (job.status === "done" || job.status === "failed") ended = true;
      } catch (_error) {
        // A missed poll is retried at the next tick.
      }
    }
    if (ended) {
      window.location.reload();
    } else {
      window.setTimeout(poll, 2000);
    }
  }
  window.setTimeout(poll, 1000);
})();
