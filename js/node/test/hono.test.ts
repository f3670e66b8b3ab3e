import { honoApp } from "./support/apps.js";
import { middlewareSuite } from "./support/scenario.js";

middlewareSuite("Hono", honoApp);
