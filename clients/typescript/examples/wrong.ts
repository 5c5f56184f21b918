/**
 * Calls the API does not have, each on its own marked line: `tsc` must refuse every one
 * (tests/test_typescript_sdk.py checks that it fails, on exactly the `WRONG` lines).
 * If the types were loose (`any`), this file would compile.
 */

import { createClient, type paths } from "@orchestrion/sdk";

type Step = paths["/api/v1/workflows"]["post"]["requestBody"]["content"]["application/json"]["steps"][number];

const api = createClient({ baseUrl: "http://127.0.0.1:8000" });

export async function wrong(): Promise<void> {
  await api.GET("/api/v1/workflowz"); // WRONG: no such path
  await api.POST("/api/v1/workflows", { body: { name: "no-steps" } }); // WRONG: `steps` is required
  await api.GET("/api/v1/executions/{execution_id}", { params: { path: { id: "x" } } }); // WRONG: the parameter is `execution_id`
  await api.POST("/api/v1/auth/login", { body: { email: "a@b.c", password: 42 } }); // WRONG: the password is a string
  const { data } = await api.GET("/api/v1/executions/{execution_id}", { params: { path: { execution_id: "x" } } });
  const status: "done" | undefined = data?.status; // WRONG: "done" is not an execution status
  const step: Step = { id: "a", type: "transform", retry: { max_attempts: "3" } }; // WRONG: max_attempts is a number
  void status;
  void step;
}
