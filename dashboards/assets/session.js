// Moodwire: when the session has ended (signed out elsewhere, idle or lifetime passed, user
// removed), Dash's requests answer 401; open the sign-in page, coming back here afterwards,
// in place of a page that silently stops updating.
(function () {
  const original = window.fetch;
  let leaving = false;
  window.fetch = async function (...args) {
    const response = await original.apply(this, args);
    if (response.status === 401 && !leaving) {
      leaving = true;
      const here = window.location.pathname + window.location.search;
      window.location.assign("/login?next=" + encodeURIComponent(here));
    }
    return response;
  };
})();
