// The generator: builds the badge URL for a page and shows the snippets to paste.
'use strict';
(function () {
  const server = window.location.origin;
  const input = document.getElementById('url');
  input.value = server;
  function update() {
    const badge = server + '/nocount/tag.svg?url=' + encodeURIComponent(input.value.trim());
    const counting = server + '/count/tag.svg?url=' + encodeURIComponent(input.value.trim());
    document.getElementById('preview').src = badge;
    document.getElementById('html-snippet').textContent = '<img src="' + counting + '" alt="hits">';
    document.getElementById('markdown-snippet').textContent = '![hits](' + counting + ')';
  }
  input.addEventListener('input', update);
  update();
})();
