# web.cmake: the dashboard's browser tests (tests/web/*.test.mjs): node's test runner,
# playwright-core driving headless Chromium against `fastbrain serve` training with the real
# worker on the bundled model, and the provider stand-ins of tests/web/providers.lua. It fails,
# saying what to install, when Chromium, node_modules or web/vendor/ is missing. Its artifacts
# (screenshots, server log, page traffic) go to test-output/web/, which the canary test reads.
find_program(FB_NODE node)
if(FB_NODE)
  set(fb_web_env "FASTBRAIN_BIN=$<TARGET_FILE:fastbrain>;FB_WEB_ARTIFACTS=${PROJECT_BINARY_DIR}/test-output/web")
  # Not under AddressSanitizer: the server side of these suites runs there in the API tests
  # (lua_api_training, lua_api_exports, api_openai, lua_api_scenario_runs, lua_api_scenarios,
  # lua_api_data), and in the browser they would take some 7 minutes of CI's 30.
  # RESOURCE_LOCK: not beside the emulated GPU's long runs (cuda_emu.cmake), which keep a core
  # busy for minutes: a page's timings did not survive it once.
  if(NOT FB_SANITIZE)
    # Skills, data, live training over SSE in two tabs, cancel, resume, providers (~2 min).
    fb_test(web_dashboard ${FB_NODE} --test ${PROJECT_SOURCE_DIR}/tests/web/dashboard.test.mjs)
    set_tests_properties(web_dashboard PROPERTIES TIMEOUT 300 ENVIRONMENT "${fb_web_env}"
                         RESOURCE_LOCK busy_cores)
    # The adapters' Use panel: chat, export and snippets against its own server (~40 s).
    fb_test(web_use ${FB_NODE} --test ${PROJECT_SOURCE_DIR}/tests/web/use.test.mjs)
    set_tests_properties(web_use PROPERTIES TIMEOUT 300 ENVIRONMENT "${fb_web_env}" RESOURCE_LOCK busy_cores)
    # Test scenarios, their runs and the training history, with the provider stand-ins (~60 s).
    fb_test(web_scenarios ${FB_NODE} --test ${PROJECT_SOURCE_DIR}/tests/web/scenarios.test.mjs)
    set_tests_properties(web_scenarios PROPERTIES TIMEOUT 300 ENVIRONMENT "${fb_web_env}"
                         RESOURCE_LOCK busy_cores)
    # A skill's data by hand, its token counts, provider keys and a cancelled generation (~30 s).
    fb_test(web_data ${FB_NODE} --test ${PROJECT_SOURCE_DIR}/tests/web/data.test.mjs)
    set_tests_properties(web_data PROPERTIES TIMEOUT 300 ENVIRONMENT "${fb_web_env}" RESOURCE_LOCK busy_cores)
    # The dashboard on a 390x844 phone: each section fits, tables as cards, a short run (~40 s).
    fb_test(web_phone ${FB_NODE} --test ${PROJECT_SOURCE_DIR}/tests/web/phone.test.mjs)
    set_tests_properties(web_phone PROPERTIES TIMEOUT 180 ENVIRONMENT "${fb_web_env}" RESOURCE_LOCK busy_cores)
    # The training view and the preview: empty state, field notes, log tail, result (~40 s).
    fb_test(web_training ${FB_NODE} --test ${PROJECT_SOURCE_DIR}/tests/web/training.test.mjs)
    set_tests_properties(web_training PROPERTIES TIMEOUT 240 ENVIRONMENT "${fb_web_env}"
                         RESOURCE_LOCK busy_cores)
  endif()
  # The log lines of a job's events, the scheduler's word on a live job among them (no browser).
  fb_test(web_activity ${FB_NODE} --test ${PROJECT_SOURCE_DIR}/tests/web/activity.test.mjs)
  # The dashboard behind a token: the printed link, its cookie, the page's calls with it (~5 s).
  fb_test(web_token ${FB_NODE} --test ${PROJECT_SOURCE_DIR}/tests/web/token.test.mjs)
  set_tests_properties(web_token PROPERTIES TIMEOUT 120 ENVIRONMENT "${fb_web_env}")
endif()
fb_test(lua_tips $<TARGET_FILE:fastbrain> run tests/web/test_tips.lua)
