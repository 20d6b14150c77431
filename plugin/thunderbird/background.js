// Wiring only: every decision is in lib/guard.js, which node tests without Thunderbird.
import { createSendGuard, createWarningWindows } from "./lib/guard.js";

const openWarning = createWarningWindows(messenger);
const guard = createSendGuard({ messenger, fetch: (...args) => fetch(...args), openWarning });

messenger.compose.onBeforeSend.addListener(guard);
