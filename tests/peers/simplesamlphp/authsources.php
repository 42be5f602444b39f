<?php
// The IdP's users come from the harness as JSON (NYMGATE_SSP_DIR/users.json):
// {"login:password": {"attribute": ["value", ...]}, ...}
$users = json_decode(file_get_contents(getenv('NYMGATE_SSP_DIR') . '/users.json'), true);
$config = [
    'admin' => ['core:AdminPassword'],
    'school-users' => array_merge(['exampleauth:UserPass'], $users),
];
