// GraphiQL against this gateway: queries over HTTP, subscriptions over WebSocket
// (graphql-transport-ws). Put `{"Authorization": "Bearer <token or API key>"}` in the
// Headers tab: HTTP requests send it as headers, the socket in its connection_init.
(function () {
  "use strict";
  var url = new URL("/graphql", window.location.href).toString();
  function headers() {
    try {
      return JSON.parse(window.localStorage.getItem("graphiql:headers") || "{}");
    } catch (error) {
      return {};
    }
  }
  var fetcher = GraphiQL.createFetcher({
    url: url,
    subscriptionUrl: url.replace(/^http/, "ws"),
    wsConnectionParams: headers,
  });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      shouldPersistHeaders: true,
      defaultEditorToolsVisibility: "headers",
      defaultHeaders: '{"Authorization": "Bearer <token or API key>"}',
    })
  );
})();
