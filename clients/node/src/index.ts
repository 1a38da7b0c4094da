/**
 * `@authd/verify`: verifies authd's access tokens in your own API and refuses the tokens of
 * ended sessions within a second, with no request to authd per call. The framework adapters
 * are at `@authd/verify/hapi`, `@authd/verify/express` and `@authd/verify/fastify`.
 */
export {
  createVerifier,
  MAX_TOKEN_BYTES,
  Verifier,
  type Claims,
  type VerifierOptions,
  type VerifierStatus,
} from "./verifier.js";
export {
  BuildError,
  ExpiredError,
  FetchError,
  ForbiddenHeaderError,
  InvalidError,
  MalformedError,
  NotYetValidError,
  RevokedError,
  StaleError,
  UnknownKeyError,
  VerifyError,
  type BuildErrorCode,
  type FetchErrorCode,
  type VerifyErrorCode,
} from "./errors.js";
export type { Logger } from "./state.js";
export type { FetchLike, HttpResponse } from "./transport.js";
export { readToken, refusal, type Refusal } from "./http.js";
