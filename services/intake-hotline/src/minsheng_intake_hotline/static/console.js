// The console's live help: village suggestions for the town, the classifier's guess, repeat-caller warning.
// Everything here is optional: without it (or with the classifier down) the form still works.
(function () {
  "use strict";
  const form = document.getElementById("entry-form");
  if (!form) return;
  const places = JSON.parse(document.getElementById("places").textContent);
  const town = document.getElementById("town");
  const villages = document.getElementById("villages");
  const text = document.getElementById("text");
  const phone = document.getElementById("phone");
  const prediction = document.getElementById("prediction");
  const warning = document.getElementById("phone-warning");

  function fillVillages() {
    villages.replaceChildren();
    const names = places[town.value.trim()] || Object.values(places).flat();
    for (const name of names) {
      const option = document.createElement("option");
      option.value = name;
      villages.appendChild(option);
    }
  }
  town.addEventListener("input", fillVillages);
  fillVillages();

  function debounce(fn, ms) {
    let timer;
    return function () { clearTimeout(timer); timer = setTimeout(fn, ms); };
  }

  let asked = 0;
  async function predict() {
    const mine = ++asked;
    const words = text.value.trim();
    if (!words) { prediction.textContent = "分类预测：输入建议后自动显示"; return; }
    try {
      const response = await fetch("/console/api/predict", {
        method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({text: words}),
      });
      const answer = await response.json();
      if (mine !== asked) return;  // a newer keystroke has asked since
      if (!answer.available) { prediction.textContent = "分类预测：分类服务暂不可用（不影响录入）"; return; }
      if (!answer.category) { prediction.textContent = "分类预测：—"; return; }
      const share = Math.round(answer.confidence * 100);
      prediction.textContent = "分类预测：" + answer.category_name + "（把握 " + share + "%）";
      prediction.dataset.category = answer.category;
    } catch (e) {
      if (mine === asked) prediction.textContent = "分类预测：分类服务暂不可用（不影响录入）";
    }
  }
  text.addEventListener("input", debounce(predict, 300));

  let checked = 0;
  let lastNumber = null;
  async function checkPhone() {
    const number = phone.value.trim();
    if (number === lastNumber) return;  // change and blur both fire: one check per number
    lastNumber = number;
    const mine = ++checked;
    warning.hidden = true;
    warning.replaceChildren();
    if (number.length < 7) return;
    try {
      const response = await fetch("/console/api/phone", {
        method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({phone: number}),
      });
      const answer = await response.json();
      if (mine !== checked || !answer.count) return;  // a newer number is being checked
      warning.append("注意：该号码在本次征集中已提交过 " + answer.count + " 条建议：");
      for (const item of answer.items) {
        const link = document.createElement("a");
        link.href = item.link;
        link.target = "_blank";
        link.textContent = item.tracking_code;
        warning.append(" ", link);
      }
      warning.hidden = false;
    } catch (e) { /* the warning is a help, not a gate */ }
  }
  phone.addEventListener("change", checkPhone);
  phone.addEventListener("blur", checkPhone);

  form.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); form.requestSubmit(); }
  });
  if (text.value) predict();
})();
