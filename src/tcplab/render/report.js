// Inlined into every tcplab report. Clicking an arrow opens its packet in the
// list; hovering a packet entry highlights its arrow. Plain DOM, nothing fetched.
(function () {
  var arrows = document.querySelectorAll('.ladder g.packet');
  function entry(i) { return document.getElementById('pkt-' + i); }
  arrows.forEach(function (g) {
    g.addEventListener('click', function () {
      var d = entry(g.getAttribute('data-index'));
      if (!d) { return; }
      d.open = true;
      d.scrollIntoView({behavior: 'smooth', block: 'center'});
    });
  });
  document.querySelectorAll('.pkts details').forEach(function (d) {
    var selector = '.ladder g.packet[data-index="' + d.getAttribute('data-index') + '"]';
    var g = document.querySelector(selector);
    if (!g) { return; }
    d.addEventListener('mouseenter', function () { g.classList.add('selected'); });
    d.addEventListener('mouseleave', function () { g.classList.remove('selected'); });
  });
})();
