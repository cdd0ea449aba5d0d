// cancelkit/cancelkit.hpp — the umbrella header: everything in the public API.
#pragma once

#include <cancelkit/cancellation_callback.hpp>
#include <cancelkit/cancellation_registration.hpp>
#include <cancelkit/cancellation_source.hpp>
#include <cancelkit/cancellation_token.hpp>
#include <cancelkit/exceptions.hpp>
#include <cancelkit/stoppable_token.hpp>
#include <cancelkit/timer_service.hpp>
